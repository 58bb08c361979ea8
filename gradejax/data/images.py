"""Photo bytes -> RGB uint8 array, and chips -> PNG files without metadata.

Every failure becomes a reason string (``code: detail``) rather than an exception, so one bad
photo skips one row, not the whole preparation.
"""
from __future__ import annotations

import io
import pathlib
import struct
import warnings
import zlib

import numpy as np
from PIL import Image, ImageOps

DEFAULT_MIN_SIDE = 64  # pixels; smaller photos give blurry 150x150 chips.
VECTOR_FORMATS = ('WMF', 'EMF')  # Pillow identifies them but can only draw them on Windows.


def decode_photo(data: bytes, *, min_side: int = DEFAULT_MIN_SIDE
                 ) -> tuple[np.ndarray | None, str | None]:
  """Decodes an image file's bytes.

  EXIF orientation is applied; grayscale, palette, CMYK, 16-bit and alpha images become RGB
  (transparent pixels are composited on white). Pillow's ``Image.MAX_IMAGE_PIXELS`` is
  respected: an image above it is treated as a decompression bomb and refused.

  Returns:
    ``(image, None)`` with ``image`` uint8 ``[H, W, 3]``, or ``(None, reason)``.
  """
  if not data:
    return None, 'image_empty: the picture holds no bytes'
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('error', Image.DecompressionBombWarning)
      with Image.open(io.BytesIO(data)) as im:
        if im.format in VECTOR_FORMATS:
          return None, (f'image_unsupported: a vector drawing ({im.format}), not a photo; '
                        'replace it with the JPEG or PNG photo')
        im.load()
        rgb = _to_rgb(_upright(im))
  except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
    return None, f'image_too_large: decompression bomb guard ({e})'
  except Image.UnidentifiedImageError:
    kind = ' (it looks like SVG, a vector drawing)' if b'<svg' in data[:2048] else ''
    return None, f'image_unsupported: not an image format Pillow can read{kind} (use JPEG or PNG)'
  except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
          IndexError, TypeError) as e:
    return None, f'image_corrupt: cannot decode the picture ({type(e).__name__}: {e})'
  h, w = rgb.shape[:2]
  if min(h, w) < min_side:
    return None, f'image_too_small: {w}x{h} px, the shorter side must be >= {min_side} px'
  return rgb, None


def _upright(im: Image.Image) -> Image.Image:
  try:
    return ImageOps.exif_transpose(im)
  except (OSError, ValueError, KeyError, TypeError, struct.error):
    return im  # Malformed EXIF: keep the pixels as stored rather than lose the photo.


def _to_rgb(im: Image.Image) -> np.ndarray:
  mode = im.mode
  if mode in ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I'):
    # 16-bit grayscale: scale 0..65535 to 0..255 rather than clipping.
    a = np.asarray(im, dtype=np.float64)
    scale = 257.0 if mode.startswith('I;16') or a.max(initial=0) > 255 else 1.0
    g = np.clip(np.rint(a / scale), 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)
  if mode == 'F':
    a = np.asarray(im, dtype=np.float64)
    a = a * 255.0 if a.max(initial=0) <= 1.0 else a
    g = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)
  has_alpha = mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La') or 'transparency' in im.info
  if has_alpha:
    rgba = im.convert('RGBA')
    white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert('RGB'), dtype=np.uint8).copy()
  return np.asarray(im.convert('RGB'), dtype=np.uint8).copy()


def encode_png(image: np.ndarray) -> bytes:
  """uint8 ``[H, W, 3]`` -> PNG bytes with no text, EXIF, ICC or time chunks."""
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f'expected uint8 [H, W, 3], got {image.dtype} {image.shape}')
  buf = io.BytesIO()
  # A fresh image from an array carries no info dict, so Pillow writes only IHDR/IDAT/IEND.
  Image.fromarray(image).save(buf, format='PNG', optimize=False)  # uint8 [H, W, 3] is RGB
  return buf.getvalue()


def write_png(path: str | pathlib.Path, image: np.ndarray) -> None:
  pathlib.Path(path).write_bytes(encode_png(image))


def read_png(path: str | pathlib.Path) -> np.ndarray:
  with Image.open(path) as im:
    return np.asarray(im.convert('RGB'), dtype=np.uint8).copy()
