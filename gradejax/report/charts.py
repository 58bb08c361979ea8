"""Charts for the verdict and the feature-visualisation page, as inline SVG (crisp at any zoom,
text selectable, no plotting library). Each function returns one ``<svg>`` element as a string;
numbers on it are rounded for reading.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from gradejax.report.panels import CATEGORICAL  # one palette for panels and charts

SVG_W, SVG_H = 420, 300
_M = dict(left=52, right=14, top=28, bottom=44)  # plot margins (px)
INK, GRID, ACCENT, MUTED = '#222', '#ddd', '#c0392b', '#4c72b0'


def _esc(s: str) -> str:
  return (str(s).replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')
          .replace('"', '&quot;'))


def _ticks(lo: float, hi: float, n: int = 5) -> np.ndarray:
  """'Nice' tick values (1, 2, 5 x 10^k steps) covering [lo, hi]."""
  span = max(hi - lo, 1e-12)
  raw = span / max(n, 1)
  mag = 10 ** np.floor(np.log10(raw))
  step = mag * min((m for m in (1, 2, 5, 10) if m * mag >= raw), default=10)
  return np.arange(np.ceil(lo / step) * step, hi + step * 1e-6, step)


def _fmt(v: float, step: float) -> str:
  digits = int(max(0, -np.floor(np.log10(step)) if step > 0 else 0))
  v = 0.0 if abs(v) < 1e-9 * max(step, 1e-12) else v  # no '-0' from arange round-off
  return f'{v:.{min(digits, 3)}f}'


class _Axes:
  """Linear data -> pixel mapping of one plot area, and the SVG of its frame and ticks."""

  def __init__(self, xlim, ylim, w=SVG_W, h=SVG_H):
    self.xlim, self.ylim, self.w, self.h = tuple(map(float, xlim)), tuple(map(float, ylim)), w, h
    self.x0, self.x1 = _M['left'], w - _M['right']
    self.y0, self.y1 = h - _M['bottom'], _M['top']

  def px(self, x):
    a, b = self.xlim
    return self.x0 + (np.asarray(x, float) - a) / max(b - a, 1e-12) * (self.x1 - self.x0)

  def py(self, y):
    a, b = self.ylim
    return self.y0 + (np.asarray(y, float) - a) / max(b - a, 1e-12) * (self.y1 - self.y0)

  def frame(self, xlabel: str, ylabel: str, title: str, xticks=None, yticks=None) -> list[str]:
    out = [f'<rect x="{self.x0}" y="{self.y1}" width="{self.x1 - self.x0}" '
           f'height="{self.y0 - self.y1}" fill="none" stroke="{INK}" stroke-width="1"/>']
    xt = _ticks(*self.xlim) if xticks is None else np.asarray(xticks, float)
    yt = _ticks(*self.ylim) if yticks is None else np.asarray(yticks, float)
    xs = float(np.diff(xt).min()) if len(xt) > 1 else 1.0
    ys = float(np.diff(yt).min()) if len(yt) > 1 else 1.0
    for t in xt:
      x = float(self.px(t))
      out.append(f'<line x1="{x:.1f}" y1="{self.y0}" x2="{x:.1f}" y2="{self.y0 + 4}" '
                 f'stroke="{INK}"/><text x="{x:.1f}" y="{self.y0 + 16}" '
                 f'text-anchor="middle">{_fmt(t, xs)}</text>')
    for t in yt:
      y = float(self.py(t))
      out.append(f'<line x1="{self.x0}" y1="{y:.1f}" x2="{self.x1}" y2="{y:.1f}" '
                 f'stroke="{GRID}"/><text x="{self.x0 - 5}" y="{y + 4:.1f}" '
                 f'text-anchor="end">{_fmt(t, ys)}</text>')
    out.append(f'<text x="{(self.x0 + self.x1) / 2:.1f}" y="{self.h - 8}" '
               f'text-anchor="middle">{_esc(xlabel)}</text>')
    out.append(f'<text transform="translate(13 {(self.y0 + self.y1) / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">{_esc(ylabel)}</text>')
    out.append(f'<text x="{self.x0}" y="16" font-weight="bold">{_esc(title)}</text>')
    return out


def _svg(body: Sequence[str], w: int = SVG_W, h: int = SVG_H, label: str = '') -> str:
  return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{w}" height="{h}" '
          f'viewBox="0 0 {w} {h}" role="img" aria-label="{_esc(label)}" '
          f'font-family="sans-serif" font-size="11">' + ''.join(body) + '</svg>')


def _path(xs, ys) -> str:
  return 'M' + ' L'.join(f'{x:.1f},{y:.1f}' for x, y in zip(xs, ys))


def format_p(p: float) -> str:
  """A p-value as a paper writes it: 'p < 0.001' below 0.001, else 3 decimals (2 above 0.1)."""
  if p < 0.001:
    return 'p < 0.001'
  return f'p = {p:.2f}' if p >= 0.1 else f'p = {p:.3f}'


def svg_null_histogram(null: np.ndarray, observed: float, p: float, metric: str = 'score',
                       chance: float | None = None, bins: int = 30) -> str:
  """Histogram of the permutation null scores [P] with the observed score (red line) and its
  p-value marked; the chance level dashed when given."""
  null = np.asarray(null, float).ravel()
  lo = min(null.min(), observed, chance if chance is not None else null.min())
  hi = max(null.max(), observed, chance if chance is not None else null.max())
  pad = 0.04 * max(hi - lo, 1e-6)
  counts, edges = np.histogram(null, bins=bins, range=(lo - pad, hi + pad))
  ax = _Axes((edges[0], edges[-1]), (0, counts.max() * 1.12 or 1))
  body = ax.frame(metric, 'shuffles', f'Permutation null ({len(null)} label shuffles)')
  for c, a, b in zip(counts, edges[:-1], edges[1:]):
    if c:
      x, y = float(ax.px(a)), float(ax.py(c))
      body.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" '
                  f'width="{max(float(ax.px(b)) - x - 0.5, 0.5):.1f}" '
                  f'height="{ax.y0 - y:.1f}" fill="{MUTED}"/>')
  if chance is not None:
    x = float(ax.px(chance))
    body.append(f'<line x1="{x:.1f}" y1="{ax.y0}" x2="{x:.1f}" y2="{ax.y1}" stroke="{INK}" '
                f'stroke-dasharray="4 3"/>')
  x = float(ax.px(observed))
  anchor = 'end' if x > (ax.x0 + ax.x1) / 2 else 'start'
  dx = -4 if anchor == 'end' else 4
  body.append(f'<line class="observed" x1="{x:.1f}" y1="{ax.y0}" x2="{x:.1f}" y2="{ax.y1}" '
              f'stroke="{ACCENT}" stroke-width="2"/>')
  body.append(f'<text x="{x + dx:.1f}" y="{ax.y1 + 14}" text-anchor="{anchor}" '
              f'fill="{ACCENT}">{_esc(f"observed {observed:.2f}, {format_p(p)}")}</text>')
  return _svg(body, label=f'permutation null histogram, observed {observed:.2f}, {format_p(p)}')


def svg_roc(fpr: np.ndarray, tpr: np.ndarray, auc: float, band: tuple | None = None,
            ci: Sequence[float] | None = None, title: str = 'Out-of-fold ROC') -> str:
  """ROC curve with its bootstrap band (``(grid, lower, upper)`` from
  :func:`gradejax.stats.roc_band`)."""
  ax = _Axes((0, 1), (0, 1), w=SVG_H + 40, h=SVG_H + 20)
  body = ax.frame('false positive rate', 'true positive rate', title)
  body.append(f'<line x1="{ax.x0}" y1="{ax.y0}" x2="{ax.x1}" y2="{ax.y1}" stroke="{INK}" '
              f'stroke-dasharray="4 3"/>')
  if band is not None:
    g, lo, hi = (np.asarray(a, float) for a in band)
    d = (_path(ax.px(g), ax.py(hi)) + ' L' +
         ' L'.join(f'{x:.1f},{y:.1f}' for x, y in zip(ax.px(g[::-1]), ax.py(lo[::-1]))) + ' Z')
    body.append(f'<path class="band" d="{d}" fill="{MUTED}" fill-opacity="0.25" stroke="none"/>')
  body.append(f'<path class="curve" d="{_path(ax.px(fpr), ax.py(tpr))}" fill="none" '
              f'stroke="{MUTED}" stroke-width="2"/>')
  text = f'AUC {auc:.2f}' + (f' (95% CI {ci[0]:.2f}-{ci[1]:.2f})' if ci is not None else '')
  body.append(f'<text x="{ax.x1 - 6}" y="{ax.y0 - 8}" text-anchor="end">{_esc(text)}</text>')
  return _svg(body, ax.w, ax.h, label=f'ROC curve, {text}')


def svg_confusion(matrix: np.ndarray, class_names: Sequence[str],
                  title: str = 'Confusion matrix (out-of-fold, repeat 0)') -> str:
  """Counts [C, C] (rows: true class, columns: predicted) with row shares as shading."""
  m = np.asarray(matrix, float)
  c = m.shape[0]
  cell = max(40, min(90, 260 // max(c, 1)))
  left, top = 110, 60
  w, h = left + cell * c + 20, top + cell * c + 40
  share = m / np.maximum(m.sum(1, keepdims=True), 1)
  body = [f'<text x="10" y="16" font-weight="bold">{_esc(title)}</text>',
          f'<text x="{left + cell * c / 2:.1f}" y="{top - 22}" text-anchor="middle">'
          f'predicted</text>',
          f'<text transform="translate(14 {top + cell * c / 2:.1f}) rotate(-90)" '
          f'text-anchor="middle">true</text>']
  for j in range(c):
    name = _esc(str(class_names[j]) if j < len(class_names) else str(j))
    body.append(f'<text x="{left + cell * (j + .5):.1f}" y="{top - 6}" '
                f'text-anchor="middle">{name}</text>')
    body.append(f'<text x="{left - 6}" y="{top + cell * (j + .5) + 4:.1f}" '
                f'text-anchor="end">{name}</text>')
  for i in range(c):
    for j in range(c):
      shade = int(round(255 - 170 * share[i, j]))
      fill = f'rgb({shade},{shade + (255 - shade) // 3},{255})'
      ink = 'white' if share[i, j] > 0.55 else INK
      x, y = left + cell * j, top + cell * i
      body.append(f'<rect class="cell" x="{x}" y="{y}" width="{cell}" height="{cell}" '
                  f'fill="{fill}" stroke="white"/>')
      body.append(f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2:.1f}" text-anchor="middle" '
                  f'fill="{ink}" font-size="14">{int(round(m[i, j]))}</text>')
      body.append(f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 15:.1f}" '
                  f'text-anchor="middle" fill="{ink}">{100 * share[i, j]:.0f}%</text>')
  return _svg(body, w, h, label='confusion matrix')


def svg_bars(names: Sequence[str], scores: Sequence[float],
             cis: Sequence[Sequence[float] | None], chance: float | None = None,
             highlight: int | None = 0, metric: str = 'score',
             title: str = 'CNN and baselines (cross-validated)') -> str:
  """Horizontal bars, one per model, with 95% CI whiskers where known; ``highlight`` (the CNN)
  drawn in the accent colour; chance dashed."""
  k = len(names)
  row = 30
  vals = [v for v in scores if v is not None and np.isfinite(v)]
  vals += [x for ci in cis if ci is not None for x in ci]
  lo = min(vals + ([chance] if chance is not None else []) + [0.0])
  hi = max(vals + ([chance] if chance is not None else []) + [1e-6])
  lo = 0.0 if lo >= 0 else lo
  hi = 1.0 if 0.5 < hi <= 1.0 else hi * 1.05
  w, h = SVG_W + 140, _M['top'] + 10 + row * k + _M['bottom']
  ax = _Axes((lo, hi), (0, k), w=w, h=h)
  ax.x0, ax.x1 = 170, w - 120  # room for the model names (left) and score [CI] (right)
  ax.y1 = _M['top'] + 10  # room for the chance label under the title
  body = [b for b in ax.frame(metric, '', title, yticks=[]) if 'rotate(-90)' not in b]
  for i, (n, s, ci) in enumerate(zip(names, scores, cis)):
    yc = float(ax.py(k - i - 0.5))
    colour = ACCENT if i == highlight else MUTED
    body.append(f'<text x="{ax.x0 - 6}" y="{yc + 4:.1f}" text-anchor="end">{_esc(n)}</text>')
    if s is None or not np.isfinite(s):
      continue
    x = float(ax.px(s))
    base = float(ax.px(max(lo, 0.0)))
    body.append(f'<rect class="bar" x="{min(base, x):.1f}" y="{yc - 9:.1f}" '
                f'width="{abs(x - base):.1f}" height="18" fill="{colour}" fill-opacity="0.8"/>')
    label = f'{s:.2f}'
    if ci is not None:
      a, b = float(ax.px(ci[0])), float(ax.px(ci[1]))
      body.append(f'<path class="ci" d="M{a:.1f},{yc:.1f} L{b:.1f},{yc:.1f} M{a:.1f},'
                  f'{yc - 6:.1f} L{a:.1f},{yc + 6:.1f} M{b:.1f},{yc - 6:.1f} L{b:.1f},'
                  f'{yc + 6:.1f}" stroke="{INK}" stroke-width="1.5" fill="none"/>')
      label += f' [{ci[0]:.2f}, {ci[1]:.2f}]'
      x = max(x, b)
    body.append(f'<text x="{x + 8:.1f}" y="{yc + 4:.1f}">{label}</text>')
  if chance is not None:
    x = float(ax.px(chance))
    body.append(f'<line x1="{x:.1f}" y1="{ax.y0}" x2="{x:.1f}" y2="{ax.y1}" stroke="{INK}" '
                f'stroke-dasharray="4 3"/><text x="{x + 3:.1f}" y="{ax.y1 - 3}">chance</text>')
  return _svg(body, w, h, label=title)


def svg_lines(series: dict[str, np.ndarray], xlabel: str = 'step', ylabel: str = 'objective',
              title: str = '', w: int = 360, h: int = 220) -> str:
  """Line chart of named curves (each [T]) against their index: optimisation histories."""
  ys = [np.asarray(v, float).ravel() for v in series.values()]
  lo = min(float(np.nanmin(v)) for v in ys)
  hi = max(float(np.nanmax(v)) for v in ys)
  if hi - lo < 1e-9:
    lo, hi = lo - 1, hi + 1
  t = max(len(v) for v in ys)
  ax = _Axes((0, max(t - 1, 1)), (lo, hi + 0.05 * (hi - lo)), w=w, h=h)
  body = ax.frame(xlabel, ylabel, title)
  for n, (name, v) in enumerate(series.items()):
    colour = '#%02x%02x%02x' % tuple(int(c) for c in CATEGORICAL[n % len(CATEGORICAL)])
    v = np.asarray(v, float).ravel()
    body.append(f'<path class="curve" d="{_path(ax.px(np.arange(len(v))), ax.py(v))}" '
                f'fill="none" stroke="{colour}" stroke-width="1.5"/>')
    body.append(f'<text x="{ax.x1 - 4}" y="{ax.y0 - 8 - 14 * n}" text-anchor="end" '
                f'fill="{colour}">{_esc(name)}</text>')
  return _svg(body, w, h, label=title or 'curves')
