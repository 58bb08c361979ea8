"""A self-contained offline HTML report: inline CSS, images as base64 PNG data URIs, no
external links (only relative links to sibling files of the run's work directory).

The report is assembled from sections (headings, paragraphs, tables, images); it knows nothing
about attribution, so the CLI decides what goes in.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import os
import pathlib
import re
from typing import Any, Sequence

from PIL import Image

from gradejax.report import panels

PRIVACY_NOTE = ('This report shows photos of students and facts about their grades. It is a '
                'local file: keep it on this machine, do not upload, e-mail or publish it, and '
                'delete it when the analysis is done.')

CSS = """
body { font-family: sans-serif; margin: 2em; max-width: 1400px; color: #222; }
.privacy { background: #fff3cd; border: 1px solid #e0c060; padding: .8em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: .25em .6em; text-align: right; }
th { background: #eee; } td.text, th.text { text-align: left; }
.flag { color: #b00; font-weight: bold; } .note { color: #555; font-size: .9em; }
img { image-rendering: pixelated; max-width: 100%; }
figure { display: inline-block; margin: .5em; vertical-align: top; }
.lead { font-size: 1.15em; background: #eef4fb; border-left: 4px solid #4c72b0;
        padding: .6em 1em; max-width: 60em; }
.lead p { margin: .3em 0; } .lead p:first-child { font-weight: bold; }
svg.chart { background: white; border: 1px solid #eee; }
details { margin: .5em 0 1.5em; } details pre { background: #f6f6f6; padding: .6em;
        max-height: 30em; overflow: auto; font-size: .85em; }
"""


@dataclasses.dataclass
class Table:
  headers: Sequence[str]
  rows: Sequence[Sequence[Any]]
  caption: str = ''


@dataclasses.dataclass
class Figure:
  image: Image.Image
  caption: str = ''


@dataclasses.dataclass
class Chart:
  """An inline SVG chart from gradejax.report.charts (trusted markup: built by our code, every
  text in it escaped there)."""
  svg: str
  caption: str = ''


@dataclasses.dataclass
class Section:
  """Rendered in this order: lead (highlighted box: the text to quote), paragraphs, links,
  charts, tables, figures, then details (folded ``<details>`` blocks of preformatted text)."""
  title: str
  paragraphs: Sequence[str] = ()
  tables: Sequence[Table] = ()
  figures: Sequence[Figure] = ()
  links: Sequence[tuple[str, str]] = ()  # (text, relative path)
  lead: Sequence[str] = ()
  charts: Sequence[Chart] = ()
  details: Sequence[tuple[str, str]] = ()  # (summary, preformatted text)


def data_uri(img: Image.Image) -> str:
  return 'data:image/png;base64,' + base64.b64encode(panels.png_bytes(img)).decode('ascii')


def _cell(v: Any) -> str:
  if isinstance(v, float):
    text = f'{v:.3f}' if abs(v) >= 1e-3 or v == 0 else f'{v:.2e}'
    return f'<td>{text}</td>'
  if isinstance(v, bool):
    return f'<td class="{"flag" if v else "text"}">{"yes" if v else "no"}</td>'
  return f'<td class="text">{html.escape(str(v))}</td>'


def _table(t: Table) -> str:
  head = ''.join(f'<th class="text">{html.escape(str(h))}</th>' for h in t.headers)
  body = ''.join('<tr>' + ''.join(_cell(v) for v in r) + '</tr>' for r in t.rows)
  cap = f'<caption>{html.escape(t.caption)}</caption>' if t.caption else ''
  return f'<table>{cap}<tr>{head}</tr>{body}</table>'


def _is_relative(href: str) -> bool:
  return '://' not in href and not href.startswith(('/', '//', 'mailto:', 'data:'))


def to_html(title: str, sections: Sequence[Section]) -> str:
  parts = [f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
           f'<title>{html.escape(title)}</title><style>{CSS}</style></head><body>',
           f'<h1>{html.escape(title)}</h1>', f'<p class="privacy">{html.escape(PRIVACY_NOTE)}</p>']
  for s in sections:
    parts.append(f'<h2>{html.escape(s.title)}</h2>')
    if s.lead:
      parts.append('<div class="lead">' + ''.join(f'<p>{html.escape(p)}</p>' for p in s.lead)
                   + '</div>')
    parts += [f'<p>{html.escape(p)}</p>' for p in s.paragraphs]
    for text, href in s.links:
      if not _is_relative(href):
        raise ValueError(f'report links must be relative paths (offline report), got {href!r}')
      parts.append(f'<p><a href="{html.escape(href)}">{html.escape(text)}</a></p>')
    for c in s.charts:
      if not c.svg.lstrip().startswith('<svg'):
        raise ValueError('Chart.svg must be one <svg> element (from gradejax.report.charts)')
      width = re.search(r'width="(\d+)"', c.svg)  # the caption wraps at the chart's width
      style = f' style="max-width:{width.group(1)}px"' if width else ''
      parts.append(f'<figure{style}>{c.svg}<figcaption>{html.escape(c.caption)}</figcaption>'
                   '</figure>')
    parts += [_table(t) for t in s.tables]
    for f in s.figures:
      parts.append(f'<figure><img alt="{html.escape(f.caption)}" src="{data_uri(f.image)}">'
                   f'<figcaption>{html.escape(f.caption)}</figcaption></figure>')
    for summary, text in s.details:
      parts.append(f'<details><summary>{html.escape(summary)}</summary>'
                   f'<pre>{html.escape(text)}</pre></details>')
  parts.append('</body></html>')
  return '\n'.join(parts)


def write(path: str | os.PathLike, title: str, sections: Sequence[Section]) -> pathlib.Path:
  """Writes the report to ``path`` (UTF-8), creating its folder."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(to_html(title, sections), encoding='utf-8')
  return path
