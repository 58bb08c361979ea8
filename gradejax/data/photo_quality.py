"""Photo conditions of each row, from the original photo (bytes and pixels), not the face chip.

``prepare`` writes one line per used row to ``OUT/photo_conditions.csv`` (columns
:data:`COLUMNS`); the evaluation builds its confound baselines from it (docs/BASELINES.md):

* image quality and compression, from the file bytes: format, estimated JPEG quality (from the
  quantisation tables, inverting the IJG scaling of the Annex K tables), chroma subsampling,
  progressive scan, bytes per pixel, resolution, aspect, sharpness (Laplacian energy), noise
  (Immerkaer 1996), 8x8 blockiness; and the framing (face size and position in the photo);
* background: colour statistics of the photo outside the chip's footprint (the face region
  masked), as ``background`` (:data:`BACKGROUND_DIM` numbers);
* facial geometry: dlib's 68 landmarks carried into chip coordinates (the chip's similarity
  alignment removes position, scale and in-plane rotation) as ``landmarks68`` (136 numbers),
  and head pose (yaw, pitch, roll in degrees) from a scaled-orthographic fit of six landmarks
  to a generic 3-D face.

No field identifies a person: no pixels are kept, only these statistics.
"""
from __future__ import annotations

import csv
import io
import pathlib
from typing import Any, Iterable

import numpy as np
from PIL import Image

# IJG / JPEG Annex K tables (natural order; only their sums are used, so order does not matter).
_STD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69,
    56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81,
    104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], float)
_STD_CHROMA = np.array([17, 18, 24, 47] + [99] * 4 + [18, 21, 26, 66] + [99] * 4
                       + [24, 26, 56] + [99] * 5 + [47, 66] + [99] * 38, float)

QUALITY_COLUMNS = ('format_jpeg', 'format_png', 'jpeg_quality', 'quant_luma_mean',
                   'quant_chroma_mean', 'chroma_subsampling', 'progressive', 'bytes_per_pixel',
                   'log_width', 'log_height', 'aspect', 'sharpness', 'noise', 'blockiness',
                   'face_size', 'face_x', 'face_y')
POSE_COLUMNS = ('yaw', 'pitch', 'roll')
BINS = 8
BACKGROUND_DIM = 4 * BINS + 8 + 12  # histograms + means/sds (as image statistics) + 2 halves
COLUMNS = ('source_row', 'id', 'group') + QUALITY_COLUMNS + POSE_COLUMNS + (
    'background', 'landmarks68')

# Generic 3-D face (mm, x right, y up, z towards the camera) at dlib 68-point indices: nose tip,
# chin, left eye outer corner, right eye outer corner, left and right mouth corners.
_POSE_POINTS = (30, 8, 36, 45, 48, 54)
_MODEL_3D = np.array([[0.0, 0.0, 0.0], [0.0, -63.6, -12.5], [-43.3, 32.7, -26.0],
                      [43.3, 32.7, -26.0], [-28.9, -28.9, -24.1], [28.9, -28.9, -24.1]])


def jpeg_quality(quantization: dict[int, Iterable[int]]) -> tuple[float, float, float]:
  """(estimated IJG quality 1-100, mean luma table entry, mean chroma table entry).

  The IJG encoder scales the Annex K tables by ``s = 5000/q`` (q < 50) or ``200 - 2q``, in
  percent; the ratio of table sums recovers ``s`` and hence ``q`` (exact up to rounding for
  libjpeg/Pillow files, an equivalent quality for other encoders).
  """
  luma = np.asarray(list(quantization.get(0, [])), float)
  chroma = np.asarray(list(quantization.get(1, quantization.get(0, []))), float)
  if luma.size != 64:
    return 100.0, 1.0, 1.0
  s = 100.0 * luma.sum() / _STD_LUMA.sum()
  q = 5000.0 / s if s > 100.0 else (200.0 - s) / 2.0
  return float(np.clip(q, 1.0, 100.0)), float(luma.mean()), float(chroma.mean())


def _gray(image: np.ndarray) -> np.ndarray:
  return np.asarray(image, np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0


def sharpness(gray: np.ndarray) -> float:
  """Mean squared 4-neighbour Laplacian of a float [H, W] image in [0, 1] (high-frequency
  energy; blurred or upscaled photos score low)."""
  lap = (gray[1:-1, :-2] + gray[1:-1, 2:] + gray[:-2, 1:-1] + gray[2:, 1:-1]
         - 4 * gray[1:-1, 1:-1])
  return float(np.mean(lap ** 2))


def noise_sigma(gray: np.ndarray) -> float:
  """Immerkaer's (1996) fast noise estimate of a float [H, W] image: sqrt(pi/2)/6 * mean
  |I * [[1,-2,1],[-2,4,-2],[1,-2,1]]| (std of additive Gaussian noise, in [0, 1] units)."""
  g = gray
  conv = (g[:-2, :-2] - 2 * g[:-2, 1:-1] + g[:-2, 2:] - 2 * g[1:-1, :-2] + 4 * g[1:-1, 1:-1]
          - 2 * g[1:-1, 2:] + g[2:, :-2] - 2 * g[2:, 1:-1] + g[2:, 2:])
  return float(np.sqrt(np.pi / 2) / 6 * np.mean(np.abs(conv)))


def blockiness(gray: np.ndarray) -> float:
  """Mean absolute step across 8x8 block boundaries over the mean step elsewhere (1: none;
  JPEG at low quality > 1)."""
  ratios = []
  for d in (np.abs(np.diff(gray, axis=1)), np.abs(np.diff(gray, axis=0)).T):
    at = (np.arange(d.shape[1]) % 8) == 7
    if at.any() and (~at).any():
      ratios.append(d[:, at].mean() / max(d[:, ~at].mean(), 1e-9))
  return float(np.mean(ratios)) if ratios else 1.0


def quality_features(data: bytes, image: np.ndarray, face_box=None) -> dict[str, float]:
  """The :data:`QUALITY_COLUMNS` of one photo: ``data`` its file bytes, ``image`` uint8
  [H, W, 3] as decoded (upright), ``face_box`` x0 y0 x1 y1 in photo pixels or None."""
  with Image.open(io.BytesIO(data)) as im:
    fmt = (im.format or '').upper()
    quant = getattr(im, 'quantization', None) or {}
    progressive = bool(im.info.get('progressive') or im.info.get('progression'))
    try:
      from PIL import JpegImagePlugin
      sampling = JpegImagePlugin.get_sampling(im) if fmt == 'JPEG' else -1
    except Exception:  # pragma: no cover - unusual JPEG layouts
      sampling = -1
  q, luma, chroma = jpeg_quality(quant) if fmt == 'JPEG' else (100.0, 1.0, 1.0)
  h, w = image.shape[:2]
  g = _gray(image)
  if face_box is None:
    size, fx, fy = 0.0, 0.5, 0.5
  else:
    x0, y0, x1, y1 = face_box
    size, fx, fy = (x1 - x0) / w, (x0 + x1) / 2 / w, (y0 + y1) / 2 / h
  return {'format_jpeg': float(fmt == 'JPEG'), 'format_png': float(fmt == 'PNG'),
          'jpeg_quality': q, 'quant_luma_mean': luma, 'quant_chroma_mean': chroma,
          'chroma_subsampling': float(sampling), 'progressive': float(progressive),
          'bytes_per_pixel': len(data) / float(h * w), 'log_width': float(np.log(w)),
          'log_height': float(np.log(h)), 'aspect': w / float(h), 'sharpness': sharpness(g),
          'noise': noise_sigma(g), 'blockiness': blockiness(g), 'face_size': float(size),
          'face_x': float(fx), 'face_y': float(fy)}


def colour_statistics(pixels: np.ndarray, bins: int = BINS) -> np.ndarray:
  """Per-channel (R, G, B, brightness) histograms plus means and sds of float pixels [M, 3] in
  [0, 1] -> float32 [4 * bins + 8] (zeros when there are no pixels)."""
  if len(pixels) == 0:
    return np.zeros(4 * bins + 8, np.float32)
  chans = np.concatenate([pixels, pixels.mean(-1, keepdims=True)], axis=-1)
  idx = np.minimum((chans * bins).astype(np.int32), bins - 1)
  hist = np.stack([np.bincount(idx[:, c], minlength=bins) for c in range(4)]) / len(chans)
  return np.concatenate([hist.ravel(), chans.mean(0), chans.std(0)]).astype(np.float32)


def background_mask(shape: tuple[int, int], affine: np.ndarray, chip_size: int) -> np.ndarray:
  """bool [H, W]: photo pixels outside the chip's footprint (the face region masked)."""
  h, w = shape
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
  a = np.asarray(affine, np.float64)
  cx = a[0, 0] * xx + a[0, 1] * yy + a[0, 2]
  cy = a[1, 0] * xx + a[1, 1] * yy + a[1, 2]
  return ~((cx >= -0.5) & (cx < chip_size - 0.5) & (cy >= -0.5) & (cy < chip_size - 0.5))


def background_features(image: np.ndarray, affine: np.ndarray, chip_size: int) -> np.ndarray:
  """float32 [BACKGROUND_DIM]: colour statistics of the photo outside the chip, then the mean
  and sd of R, G, B in its upper and lower halves (a tint or gradient behind the head)."""
  x = np.asarray(image, np.float32) / 255.0
  mask = background_mask(x.shape[:2], affine, chip_size)
  top = np.zeros_like(mask)
  top[:x.shape[0] // 2] = True
  halves = []
  for part in (mask & top, mask & ~top):
    px = x[part]
    halves += [px.mean(0), px.std(0)] if len(px) else [np.zeros(3), np.zeros(3)]
  return np.concatenate([colour_statistics(x[mask])] + halves).astype(np.float32)


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
  """(yaw, pitch, roll) degrees from dlib's 68 landmarks (photo pixels, y down).

  Scaled orthographic projection: the 2x3 map from the generic 3-D points to the (centred)
  image points by least squares, its rows made orthonormal (SVD), the third axis their cross
  product; angles of that rotation (x-y-z order). An approximation (a generic face, no
  perspective) good to a few degrees near frontal, enough to compare photos.
  """
  p = np.asarray(landmarks, np.float64)[list(_POSE_POINTS)] * np.array([1.0, -1.0])
  p = p - p.mean(0)
  m3 = _MODEL_3D - _MODEL_3D.mean(0)
  proj = np.linalg.lstsq(m3, p, rcond=None)[0].T  # [2, 3]
  u, _, vt = np.linalg.svd(proj, full_matrices=False)
  r12 = u @ vt
  rot = np.stack([r12[0], r12[1], np.cross(r12[0], r12[1])])
  yaw = np.degrees(np.arcsin(np.clip(rot[0, 2], -1, 1)))
  pitch = np.degrees(np.arctan2(-rot[1, 2], rot[2, 2]))
  roll = np.degrees(np.arctan2(-rot[0, 1], rot[0, 0]))
  return float(yaw), float(pitch), float(roll)


def load_landmarks68():
  """dlib's 68-point shape predictor (from face_recognition_models)."""
  import dlib
  from gradejax import paths
  return dlib.shape_predictor(str(paths.dlib_model('shape_predictor_68_face_landmarks.dat')))


def landmarks68(predictor, image: np.ndarray, box) -> np.ndarray:
  """float64 [68, 2] photo-pixel landmarks in the detection ``box`` (x0 y0 x1 y1)."""
  import dlib
  shape = predictor(np.ascontiguousarray(image), dlib.rectangle(*(int(round(v)) for v in box)))
  return np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float64)


def row_conditions(data: bytes, image: np.ndarray, face, predictor, chip_size: int
                   ) -> dict[str, Any]:
  """Every field of :data:`COLUMNS` except source_row, id and group, for one used row.

  ``face``: the :class:`gradejax.data.faces.Face` found in ``image``; centre crops (no box)
  get empty pose and landmark fields.
  """
  out: dict[str, Any] = quality_features(data, image, face.box)
  out['background'] = background_features(image, face.affine, chip_size)
  if face.box is not None and predictor is not None:
    lm = landmarks68(predictor, image, face.box)
    out.update(zip(POSE_COLUMNS, head_pose(lm)))
    a = np.asarray(face.affine)
    out['landmarks68'] = (lm @ a[:, :2].T + a[:, 2]).ravel()  # chip pixels
  return out


def _fmt(v) -> str:
  if v is None:
    return ''
  if isinstance(v, np.ndarray):
    return ' '.join(f'{x:.6g}' for x in v.ravel())
  if isinstance(v, float):
    return f'{v:.8g}'
  return str(v)


def write_csv(path: str | pathlib.Path, rows: Iterable[dict[str, Any]]) -> None:
  """One line per dict (keys from :data:`COLUMNS`; missing ones are written empty)."""
  with open(path, 'w', newline='', encoding='utf-8') as f:
    w = csv.DictWriter(f, fieldnames=COLUMNS)
    w.writeheader()
    for r in rows:
      w.writerow({k: _fmt(r.get(k)) for k in COLUMNS})


def read_csv(path: str | pathlib.Path) -> dict[int, dict[str, Any]]:
  """source_row -> {column: float, float array, or str for id/group; None where empty}."""
  out = {}
  with open(path, newline='', encoding='utf-8') as f:
    for r in csv.DictReader(f):
      row: dict[str, Any] = {'id': r['id'], 'group': r['group']}
      for k in QUALITY_COLUMNS + POSE_COLUMNS:
        row[k] = float(r[k]) if r.get(k, '') != '' else None
      for k in ('background', 'landmarks68'):
        row[k] = (np.array([float(v) for v in r[k].split()], np.float32) if r.get(k, '')
                  else None)
      out[int(r['source_row'])] = row
  return out
