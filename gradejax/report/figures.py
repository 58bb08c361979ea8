"""Heat-map overlays with colour bars, class-region maps, grids and PNG files, with Pillow only.

Maps are ``[H, W]`` float arrays. Unsigned maps use a sequential map (inferno-like) from 0 to
their robust maximum (99.5th percentile); signed maps a diverging blue-white-red map centred on
0 and symmetric at the robust maximum of |map|. PNGs are written without metadata.
"""
from __future__ import annotations

import io
import os
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Anchor colours, linearly interpolated between evenly spaced stops.
SEQUENTIAL = np.array([(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66),
                       (245, 125, 21), (250, 193, 39), (252, 255, 164)], np.float64)
DIVERGING = np.array([(59, 76, 192), (141, 176, 254), (242, 242, 242), (244, 154, 123),
                      (180, 4, 38)], np.float64)
CATEGORICAL = np.array([(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
                        (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127),
                        (188, 189, 34), (23, 190, 207)], np.uint8)
MIN_SIZE = 150  # panels smaller than this are enlarged (nearest neighbour) to stay readable
BAR_WIDTH = 14
PAD = 4


def _font() -> ImageFont.ImageFont:
  return ImageFont.load_default()


def colormap(values: np.ndarray, signed: bool = False) -> np.ndarray:
  """values in [0, 1] (signed maps: 0.5 is zero) -> uint8 RGB [..., 3]."""
  stops = DIVERGING if signed else SEQUENTIAL
  v = np.clip(np.nan_to_num(np.asarray(values, np.float64)), 0, 1) * (len(stops) - 1)
  i = np.minimum(v.astype(int), len(stops) - 2)
  f = (v - i)[..., None]
  return np.round(stops[i] * (1 - f) + stops[i + 1] * f).astype(np.uint8)


def scale(heat: np.ndarray, signed: bool, percentile: float = 99.5
          ) -> tuple[np.ndarray, float, float]:
  """Map -> ([H, W] in [0, 1], vmin, vmax) with the values the ends of the colour bar show."""
  heat = np.nan_to_num(np.asarray(heat, np.float64))
  if signed:
    top = float(np.percentile(np.abs(heat), percentile)) or float(np.abs(heat).max()) or 1.0
    return np.clip(heat / top, -1, 1) * 0.5 + 0.5, -top, top
  lo = float(min(heat.min(), 0.0))
  top = float(np.percentile(heat, percentile))
  top = top if top > lo else (float(heat.max()) if heat.max() > lo else lo + 1.0)
  return np.clip((heat - lo) / (top - lo), 0, 1), lo, top


def to_uint8(image: np.ndarray) -> np.ndarray:
  """[H, W, 3] float in [0, 1] or uint8 -> uint8."""
  image = np.asarray(image)
  if image.dtype == np.uint8:
    return image
  return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _enlarge(img: Image.Image, min_size: int = MIN_SIZE) -> Image.Image:
  k = max(1, -(-min_size // min(img.size)))
  return img.resize((img.width * k, img.height * k), Image.NEAREST) if k > 1 else img


def overlay(image: np.ndarray, heat: np.ndarray, signed: bool = False, alpha: float = 0.6
            ) -> tuple[Image.Image, float, float]:
  """The map in colour over a grey copy of the photo; returns (image, vmin, vmax)."""
  grey = to_uint8(image).astype(np.float64).mean(axis=-1, keepdims=True)
  scaled, lo, hi = scale(heat, signed)
  mixed = (1 - alpha) * grey + alpha * colormap(scaled, signed)
  return Image.fromarray(np.round(mixed).astype(np.uint8)), lo, hi


def colour_bar(height: int, vmin: float, vmax: float, signed: bool = False) -> Image.Image:
  """A vertical bar (top = vmax) with its end and middle values written beside it."""
  ramp = np.linspace(1, 0, height)[:, None].repeat(BAR_WIDTH, axis=1)
  bar = Image.fromarray(colormap(ramp, signed))
  out = Image.new('RGB', (BAR_WIDTH + 52, height), 'white')
  out.paste(bar, (0, 0))
  draw = ImageDraw.Draw(out)
  for frac, value in ((0.0, vmax), (0.5, (vmin + vmax) / 2), (1.0, vmin)):
    y = int(round(frac * (height - 10)))
    draw.text((BAR_WIDTH + 3, y), f'{value:.2g}', fill='black', font=_font())
  return out


def _titled(img: Image.Image, title: str) -> Image.Image:
  out = Image.new('RGB', (img.width, img.height + 14), 'white')
  out.paste(img, (0, 14))
  ImageDraw.Draw(out).text((2, 1), title[: max(4, img.width // 6)], fill='black', font=_font())
  return out


def heat_panel(image: np.ndarray, heat: np.ndarray, signed: bool = False, title: str = ''
               ) -> Image.Image:
  """Overlay + colour bar (+ title): one method's map on one image."""
  ov, lo, hi = overlay(image, heat, signed)
  ov = _enlarge(ov)
  bar = colour_bar(ov.height, lo, hi, signed)
  out = Image.new('RGB', (ov.width + PAD + bar.width, ov.height), 'white')
  out.paste(ov, (0, 0))
  out.paste(bar, (ov.width + PAD, 0))
  return _titled(out, title) if title else out


def region_panel(image: np.ndarray, classes: np.ndarray, class_names: Sequence[str],
                 title: str = '', alpha: float = 0.5) -> Image.Image:
  """Class index per pixel [H, W] in categorical colours over the photo, with a legend."""
  grey = to_uint8(image).astype(np.float64).mean(axis=-1, keepdims=True)
  colours = CATEGORICAL[np.asarray(classes) % len(CATEGORICAL)].astype(np.float64)
  ov = _enlarge(Image.fromarray(np.round((1 - alpha) * grey + alpha * colours).astype(np.uint8)))
  legend = Image.new('RGB', (BAR_WIDTH + 52, ov.height), 'white')
  draw = ImageDraw.Draw(legend)
  for k, name in enumerate(class_names[: ov.height // 14]):
    draw.rectangle((0, 14 * k, 10, 14 * k + 10), fill=tuple(int(c) for c in
                                                           CATEGORICAL[k % len(CATEGORICAL)]))
    draw.text((13, 14 * k), str(name)[:8], fill='black', font=_font())
  out = Image.new('RGB', (ov.width + PAD + legend.width, ov.height), 'white')
  out.paste(ov, (0, 0))
  out.paste(legend, (ov.width + PAD, 0))
  return _titled(out, title) if title else out


def image_panel(image: np.ndarray, title: str = '') -> Image.Image:
  img = _enlarge(Image.fromarray(to_uint8(image)))
  return _titled(img, title) if title else img


def grid(panels: Sequence[Sequence[Image.Image]], row_titles: Sequence[str] = ()
         ) -> Image.Image:
  """Rows of panels (rows x columns, e.g. images x methods) in one image, top-left aligned."""
  rows = [list(r) for r in panels if r]
  if not rows:
    raise ValueError('grid: no panels')
  cols = max(len(r) for r in rows)
  widths = [max(r[j].width for r in rows if j < len(r)) for j in range(cols)]
  heights = [max(p.height for p in r) for r in rows]
  label_w = 60 if row_titles else 0
  out = Image.new('RGB', (label_w + sum(widths) + PAD * (cols + 1),
                          sum(heights) + PAD * (len(rows) + 1)), 'white')
  draw = ImageDraw.Draw(out)
  y = PAD
  for i, r in enumerate(rows):
    if i < len(row_titles):
      draw.text((2, y + heights[i] // 2), str(row_titles[i])[:10], fill='black', font=_font())
    x = label_w + PAD
    for j, p in enumerate(r):
      out.paste(p, (x, y))
      x += widths[j] + PAD
    y += heights[i] + PAD
  return out


def save_png(img: Image.Image, path: str | os.PathLike) -> None:
  """Writes a plain RGB PNG (Pillow adds no text chunks unless given pnginfo)."""
  img.convert('RGB').save(path, format='PNG')


def png_bytes(img: Image.Image) -> bytes:
  buf = io.BytesIO()
  img.convert('RGB').save(buf, format='PNG')
  return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Charts for the verdict, as inline SVG (crisp at any zoom, text selectable, no plotting library).
# Each function returns one ``<svg>`` element as a string; numbers on it are rounded for reading.

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


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Binary ROC (labels [N] in {0, 1}, scores [N] of class 1): (fpr, tpr) at every distinct
  threshold, from (0, 0) to (1, 1); tied scores move both rates at once (a diagonal step), so
  the trapezoid area equals the Mann-Whitney AUC."""
  y = np.asarray(labels).astype(bool)
  s = np.asarray(scores, float)
  order = np.argsort(-s, kind='stable')
  s, y = s[order], y[order]
  last = np.r_[np.diff(s) != 0, True]  # the last row of each tie group
  tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
  return (np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)])


def roc_band(labels: np.ndarray, scores: np.ndarray, n: int = 200, seed: int = 0,
             grid: int = 101, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Pointwise bootstrap band of the ROC: rows resampled with replacement (stratified by class,
  so each resample has both), TPR interpolated on an FPR grid. Returns (fpr grid [G], lower
  [G], upper [G])."""
  rng = np.random.default_rng(seed)
  y = np.asarray(labels).astype(int)
  s = np.asarray(scores, float)
  pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
  fpr_grid = np.linspace(0, 1, grid)
  curves = np.empty((n, grid))
  for b in range(n):
    idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
    f, t = roc_curve(y[idx], s[idx])
    curves[b] = np.interp(fpr_grid, f, t)  # f is non-decreasing; right-most tpr at ties
  q = (1 - level) / 2
  return fpr_grid, np.quantile(curves, q, axis=0), np.quantile(curves, 1 - q, axis=0)


def svg_roc(fpr: np.ndarray, tpr: np.ndarray, auc: float, band: tuple | None = None,
            ci: Sequence[float] | None = None, title: str = 'Out-of-fold ROC') -> str:
  """ROC curve with its bootstrap band (``(grid, lower, upper)`` from :func:`roc_band`)."""
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
