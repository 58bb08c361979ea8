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
