"""The embedded demo workbook: a synthetic stand-in for the school's Excel file.

``write_demo_workbook`` writes a real .xlsx (headers ``id``, ``grade``, ``photo``; one JPEG
portrait anchored in each photo cell, as Excel does for a picture dropped on a cell) and
``truth.csv`` beside it with the ground truth of the planted cue.

The cue world. ``cue_strength`` s in [0, 1] plants a bright round sticker on one cheek, inside
the region the aligned face chip covers, with probability

    P(cue) = 0.5 + s/2  for students at or above the median grade,
    P(cue) = 0.5 - s/2  below it.

s = 0 is the null world: the photo carries no information about the grade (every other
attribute -- skin tone, hair, background, lighting, pose, the sticker's colour and side -- is
drawn independently of the grade), so an honest pipeline must find nothing. s = 1 makes the
sticker a perfect predictor of the median split. The portrait of a row does not depend on s:
only the sticker's presence does.

Other cue kinds (``cue_kind``) plant photo conditions instead, for testing the confound
baselines: ``'jpeg'`` saves the cue rows' photos at JPEG quality :data:`JPEG_LOW_QUALITY` (the
others at :data:`JPEG_QUALITY`), ``'background'`` tints the background behind the head of the
cue rows (:data:`BACKGROUND_TINT`), ``'brightness'`` makes their whole photo brighter and warmer,
``'sharpness'`` blurs it, ``'resolution'`` saves it smaller (truth's eyes and nose stay in the
full-size frame); held-out conditions for the harmonisation's generality: ``'tint'``,
``'vignette'``, ``'noise'``, ``'boxblur'``, ``'gamma'``; the facial kinds change the face:
``'eyeband'`` a dark band across the eyes,
``'face_shape'`` a wider face with a heavier jaw. None paints a sticker; the default
``'sticker'`` gives the same bytes as before these options existed.

All randomness comes from numpy Generators seeded per row, ``default_rng([seed, row, stream])``,
so a workbook is reproducible row by row.

CLI::

  python -m gradejax.demo_data --out FILE.xlsx [--n 430] [--seed 0] [--cue_strength 0.0]
"""
from __future__ import annotations

import csv
import dataclasses
import io
import multiprocessing
import os
import pathlib
import signal
from typing import Callable, Iterator, Sequence

import numpy as np
import openpyxl
from openpyxl.drawing.image import Image as XlImage
from PIL import Image
from scipy import stats

from gradejax import options as optlib
from gradejax.data import portraits
from gradejax.options import default_of, option

GRADE_MEDIAN = 4.75
# Chosen so that about 7% fail (grade < 4.0): ~30 of 430, like the school's cohort.
GRADE_SD = 0.51
GRADE_STEP = 0.05  # averages are reported to the nearest 0.05
PASS_MARK = 4.0
JPEG_QUALITY = 90
JPEG_LOW_QUALITY = 25  # cue_kind='jpeg': the cue rows' compression
BACKGROUND_TINT = (np.array([0.45, 0.55, 0.85]), 0.35)  # cue_kind='background': colour, blend
# cue_kind 'brightness': the cue rows' whole photo brighter and warmer (gain per channel);
# 'sharpness': blurred (sigma in photo pixels); 'resolution': saved at a smaller size;
# 'eyeband': a dark band across the eyes (a facial cue, like spectacles); 'face_shape': a wider
# face with a heavier jaw (facial geometry).
BRIGHTNESS_GAIN = np.array([1.14, 1.07, 0.96])
BLUR_SIGMA = 1.6
RESOLUTION_SCALE = 0.6
EYEBAND_DARKEN = 0.55
EYEBAND_EDGE = 2.0  # px: the band's soft edge, beyond its half sizes
FACE_SHAPE = {'face_width': 0.10, 'jaw': 0.12}  # added to the drawn values
# Held-out conditions (issue 23: the harmonisation must be general, not tuned to the ones
# above): 'tint' a colour cast added to the whole photo, 'vignette' corners darkened
# radially, 'noise' Gaussian sensor noise, 'boxblur' a box (not Gaussian) blur kernel,
# 'gamma' a tone curve (not a gain).
TINT = np.array([-0.04, 0.02, 0.07])
VIGNETTE = 0.45  # brightness lost at the photo's corners (quadratic in the radius)
NOISE_SD = 0.035
BOX_BLUR = 2  # radius in photo pixels (PIL BoxBlur)
GAMMA = 0.8
CUE_KINDS = ('sticker', 'jpeg', 'background', 'brightness', 'sharpness', 'resolution',
             'eyeband', 'face_shape', 'tint', 'vignette', 'noise', 'boxblur', 'gamma')
CONDITION_KINDS = ('jpeg', 'background', 'brightness', 'sharpness', 'resolution', 'tint',
                   'vignette', 'noise', 'boxblur', 'gamma')
_WHOLE_PHOTO = ('brightness', 'sharpness', 'resolution', 'eyeband', 'tint', 'vignette', 'noise',
                'boxblur', 'gamma')
FACIAL_KINDS = ('sticker', 'eyeband', 'face_shape')
DISPLAY_HEIGHT_PX = 150  # how large a photo shows in Excel (the JPEG keeps full resolution)
PHOTO_SIZE = (portraits.WIDTH, portraits.HEIGHT)  # (width, height) pixels of each portrait

# Row streams of default_rng([seed, row, stream]).
_APPEARANCE, _CUE = 0, 1


@dataclasses.dataclass(frozen=True)
class Truth:
  """Ground truth of a demo workbook, one entry per data row (row r is sheet row r + 2).

  id: str [N] (6-digit ids); grade: float64 [N]; cue: int32 [N] 0/1; cue_box: float64 [N, 4]
  x0 y0 x1 y1 in photo pixels (NaN where cue = 0); eyes float64 [N, 2, 2] and nose float64
  [N, 2] (x, y) in photo pixels, where the portrait's eyes and nose base were drawn.
  """
  id: np.ndarray
  grade: np.ndarray
  cue: np.ndarray
  cue_box: np.ndarray
  eyes: np.ndarray
  nose: np.ndarray


def _check(n: int, cue_strength: float, photo_size: tuple[int, int] = PHOTO_SIZE) -> None:
  if n < 1:
    raise ValueError(f'n must be >= 1 (rows in the demo workbook); got {n}.')
  if n > 900_000:
    raise ValueError(f'n={n}: at most 900000 rows (ids are unique 6-digit numbers).')
  if not 0.0 <= cue_strength <= 1.0:
    raise ValueError(f'cue_strength must lie in [0, 1] (0 = null world, 1 = perfect cue); '
                     f'got {cue_strength}.')
  if len(photo_size) != 2 or min(photo_size) < 16:
    raise ValueError(f'photo_size must be (width, height) in pixels, each >= 16; got '
                     f'{photo_size!r} (dlib finds faces reliably from about (260, 300)).')


def demo_ids(n: int, seed: int = 0) -> np.ndarray:
  """Unique random 6-digit ids: str [n]."""
  rng = np.random.default_rng([seed, 1_000_003])
  return np.array([str(v) for v in rng.choice(900_000, n, replace=False) + 100_000])


def demo_grades(n: int, seed: int = 0) -> np.ndarray:
  """Grades on the Swiss scale: float64 [n] in [1, 6], rounded to 0.05.

  Stratified normal quantiles (median 4.75, sd 0.51) in random order, so any n gets the
  cohort's shape: for n = 430 about 400 pass and 30 fail at 4.0, median 4.75.
  """
  rng = np.random.default_rng([seed, 1_000_004])
  q = (rng.permutation(n) + rng.uniform(size=n)) / n
  g = GRADE_MEDIAN + GRADE_SD * stats.norm.ppf(q)
  return np.clip(np.round(g / GRADE_STEP) * GRADE_STEP, 1.0, 6.0).round(2)


def cue_draws(grades: np.ndarray, seed: int, cue_strength: float) -> np.ndarray:
  """Whether each row carries the cue: int32 [n] 0/1 (see the module docstring for P(cue))."""
  grades = np.asarray(grades, np.float64)
  _check(len(grades), cue_strength)
  high = grades >= np.median(grades)
  p = np.where(high, 0.5 + cue_strength / 2, 0.5 - cue_strength / 2)
  u = np.array([np.random.default_rng([seed, r, _CUE]).uniform() for r in range(len(grades))])
  return (u < p).astype(np.int32)


CUE_SHAPES = ('sticker', 'tag')


def render_row(seed: int, row: int, cue: bool,
               photo_size: tuple[int, int] = PHOTO_SIZE, cue_kind: str = 'sticker',
               cue_shape: str = 'sticker'
               ) -> tuple[np.ndarray, portraits.Face, tuple[float, ...] | None]:
  """The portrait of data row ``row`` (0-based): uint8 [H, W, 3], its Face, cue box or None.

  The appearance depends on (seed, row) only; the sticker's colour and side are drawn from the
  cue stream whether or not it is painted, so they too are independent of the grade.
  ``photo_size`` is (width, height) in pixels. ``cue_kind`` 'background' tints the
  background of a cue row; 'jpeg' draws the portrait as if there were no cue (the cue is in
  the compression, see :func:`encode_jpeg`).
  ``cue_shape`` (for ``cue_kind`` 'sticker'): 'sticker' (a round sticker on
  the cheekbone) or 'tag' (a square badge low on the jaw: another shape and place, drawn from
  the cue stream after the sticker's draws, so 'sticker' workbooks are unchanged).
  """
  if cue_shape not in CUE_SHAPES:
    raise ValueError(f'cue_shape must be one of {", ".join(CUE_SHAPES)}; got {cue_shape!r}.')
  params = portraits.sample_params(np.random.default_rng([seed, row, _APPEARANCE]))
  cue_rng = np.random.default_rng([seed, row, _CUE])
  cue_rng.uniform()  # the presence draw of cue_draws
  sticker = portraits.sample_sticker(cue_rng)
  if cue_kind not in CUE_KINDS:
    raise ValueError(f'cue_kind must be one of {", ".join(CUE_KINDS)}; got {cue_kind!r}')
  if cue and cue_kind == 'background':
    tint, blend = BACKGROUND_TINT
    params = dict(params, bg_top=(1 - blend) * params['bg_top'] + blend * tint,
                  bg_bottom=(1 - blend) * params['bg_bottom'] + blend * tint)
  if cue and cue_kind == 'face_shape':
    params = dict(params, **{k: params[k] + d for k, d in FACE_SHAPE.items()})
  if cue and cue_kind in _WHOLE_PHOTO:
    image, face = portraits.draw(params, None, size=photo_size)
    rng = np.random.default_rng([seed, row, _CUE, 1]) if cue_kind == 'noise' else None
    box = eyeband_box(face) if cue_kind == 'eyeband' else None  # the only local one of them
    return _condition(image, face, cue_kind, rng), face, box
  cue = cue and cue_kind == 'sticker'
  if cue_shape == 'tag':
    tag = portraits.sample_tag(cue_rng)
    image, face = portraits.draw(params, None, size=photo_size, tag=tag if cue else None)
    return image, face, (portraits.tag_box(face, tag) if cue else None)
  image, face = portraits.draw(params, sticker if cue else None, size=photo_size)
  box = portraits.sticker_box(face, sticker) if cue else None
  return image, face, box


def _condition(image: np.ndarray, face: portraits.Face, kind: str,
               rng: np.random.Generator | None = None) -> np.ndarray:
  """A cue row's photo under the photo condition or facial change ``kind`` (see CUE_KINDS);
  ``rng`` draws the 'noise' kind's noise."""
  from PIL import ImageFilter
  x = image.astype(np.float64) / 255.0
  if kind == 'brightness':
    x = x * BRIGHTNESS_GAIN
  elif kind == 'tint':
    x = x + TINT
  elif kind == 'gamma':
    x = x ** GAMMA
  elif kind == 'vignette':
    h, w = x.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    x = x * (1 - VIGNETTE * r2 / 2)[..., None]
  elif kind == 'noise':
    x = x + (rng or np.random.default_rng(0)).normal(0, NOISE_SD, x.shape)
  elif kind == 'boxblur':
    return np.asarray(Image.fromarray(image).filter(ImageFilter.BoxBlur(BOX_BLUR)))
  elif kind == 'sharpness':
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(BLUR_SIGMA)))
  elif kind == 'resolution':
    h, w = image.shape[:2]
    size = (max(16, round(w * RESOLUTION_SCALE)), max(16, round(h * RESOLUTION_SCALE)))
    return np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))
  else:  # eyeband: soft-edged dark bar along the eye line, past both eyes
    (cx, cy), (ux, uy), half_along, half_across = _eyeband_frame(face)
    yy, xx = np.mgrid[0:x.shape[0], 0:x.shape[1]].astype(np.float64)
    along = (xx - cx) * ux + (yy - cy) * uy
    across = -(xx - cx) * uy + (yy - cy) * ux
    inside = (np.clip(1 - (np.abs(along) - half_along) / EYEBAND_EDGE, 0, 1)
              * np.clip(1 - (np.abs(across) - half_across) / EYEBAND_EDGE, 0, 1))
    x = x * (1 - EYEBAND_DARKEN * inside[..., None])
  return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def _eyeband_frame(face: portraits.Face
                   ) -> tuple[tuple[float, float], tuple[float, float], float, float]:
  """The eye band's centre, unit direction along the eye line, and half length / half width
  (px, where its darkening starts to fade): it runs past both eyes."""
  (lx, ly), (rx, ry) = face.eyes
  d = float(np.hypot(rx - lx, ry - ly))
  return ((lx + rx) / 2, (ly + ry) / 2), ((rx - lx) / d, (ry - ly) / d), 0.95 * d, 0.22 * d


def eyeband_box(face: portraits.Face) -> tuple[float, float, float, float]:
  """The eye band's bounding box, its soft edge included (the band turns with the eye line):
  x0 y0 x1 y1 in photo pixels."""
  (cx, cy), (ux, uy), a, b = _eyeband_frame(face)
  a, b = a + EYEBAND_EDGE, b + EYEBAND_EDGE
  xs = [cx + sa * a * ux - sb * b * uy for sa in (-1, 1) for sb in (-1, 1)]
  ys = [cy + sa * a * uy + sb * b * ux for sa in (-1, 1) for sb in (-1, 1)]
  return (min(xs), min(ys), max(xs), max(ys))


def _photo_of_row(job: tuple) -> tuple[bytes, np.ndarray, np.ndarray, tuple | None]:
  """One workbook row's picture (a worker's task): JPEG bytes, the face's eyes and nose, the
  cue box or None. ``job`` is :func:`render_row`'s arguments."""
  seed, row, cue, size, cue_kind, cue_shape = job
  image, face, box = render_row(seed, row, cue, size, cue_kind, cue_shape)
  low = cue_kind == 'jpeg' and cue
  return (encode_jpeg(image, JPEG_LOW_QUALITY if low else JPEG_QUALITY),
          np.asarray(face.eyes), np.asarray(face.nose), box)


def map_rows(fn: Callable, jobs: Sequence, workers: int = 1) -> Iterator:
  """``map(fn, jobs)`` in input order, in ``workers`` spawned processes (0: one per core; 1 or
  a handful of jobs: in this process). Drawing a portrait is pure numpy on one core, so two
  cores draw a workbook in about half the time with the same bytes. Spawned, not forked: the
  caller may hold threads (JAX, a test runner) that a fork would copy half-stopped."""
  workers = (os.cpu_count() or 1) if workers == 0 else workers
  workers = max(1, min(int(workers), len(jobs) // 8))  # a pool only pays for itself on many rows
  if workers == 1:
    yield from map(fn, jobs)
    return
  ctx = multiprocessing.get_context('spawn')
  # Workers ignore Ctrl-C; the parent's KeyboardInterrupt ends the pool (its __exit__).
  with ctx.Pool(workers, initializer=signal.signal,
                initargs=(signal.SIGINT, signal.SIG_IGN)) as pool:
    yield from pool.imap(fn, jobs, chunksize=4)


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
  """uint8 [H, W, 3] -> JPEG bytes (no EXIF or other metadata)."""
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format='JPEG', quality=quality)
  return buf.getvalue()


def write_demo_workbook(path: str | pathlib.Path, *, n: int = 430, seed: int = 0,
                        cue_strength: float = 0.0,
                        photo_size: tuple[int, int] = PHOTO_SIZE,
                        cue_kind: str = 'sticker', cue_shape: str = 'sticker',
                        workers: int = 1) -> Truth:
  """Writes the demo .xlsx at ``path`` and ``truth.csv`` in the same folder; returns the truth.

  Args:
    path: the .xlsx to write (its folder is created).
    n: rows (students).
    seed: the workbook's seed; the same seed gives the same ids, grades and image bytes.
    cue_strength: s in [0, 1]; P(cue) = 0.5 + s/2 at or above the median grade, 0.5 - s/2
      below (0: null world, photos carry no information about grades; 1: perfect cue).
    photo_size: (width, height) of each portrait in pixels. The default suits dlib's HOG
      detector (faces ~120 px wide); much smaller photos are for quick tests of the workbook.
    cue_kind: 'sticker' (the default: a sticker on the cheek), 'jpeg' (cue rows compressed
      at quality JPEG_LOW_QUALITY), 'background' (cue rows' background tinted), 'brightness',
      'sharpness', 'resolution' (photo conditions) or 'eyeband', 'face_shape' (facial cues;
      see CUE_KINDS); the cue box is written for the local cues: the sticker, the tag and
      the eye band.
    cue_shape: 'sticker' (round, on the cheekbone) or 'tag' (square, low on the jaw): the
      second planted local cue, for checking that attribution localises a cue of another
      shape and place (see :func:`render_row`).
    workers: processes that draw the portraits (0: one per CPU core). Each row depends on
      (seed, row) only and rows come back in order, so the bytes are the same for any count.

  Returns:
    The ground truth (also written to ``truth.csv``), row r being sheet row r + 2.
  """
  _check(n, cue_strength, photo_size)
  width, height = map(int, photo_size)
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  ids, grades = demo_ids(n, seed), demo_grades(n, seed)
  cues = cue_draws(grades, seed, cue_strength)

  wb = openpyxl.Workbook()
  ws = wb.active
  ws.title = 'students'
  ws.append(['id', 'grade', 'photo'])
  boxes = np.full((n, 4), np.nan)
  eyes, nose = np.zeros((n, 2, 2)), np.zeros((n, 2))
  scale = DISPLAY_HEIGHT_PX / height
  ws.column_dimensions['C'].width = width * scale / 7 + 1  # ~7 px per character
  jobs = [(seed, r, bool(cues[r]), (width, height), cue_kind, cue_shape) for r in range(n)]
  for r, (jpeg, face_eyes, face_nose, box) in enumerate(map_rows(_photo_of_row, jobs, workers)):
    sheet_row = r + 2
    ws.cell(sheet_row, 1, int(ids[r]))
    ws.cell(sheet_row, 2, float(grades[r])).number_format = '0.00'
    if box is not None:
      boxes[r] = box
    eyes[r], nose[r] = face_eyes, face_nose
    pic = XlImage(io.BytesIO(jpeg))
    pic.width, pic.height = round(width * scale), DISPLAY_HEIGHT_PX
    ws.add_image(pic, f'C{sheet_row}')
    ws.row_dimensions[sheet_row].height = DISPLAY_HEIGHT_PX * 0.75 + 2  # points
  wb.save(path)

  truth = Truth(ids, grades, cues, boxes, eyes, nose)
  write_truth_csv(path.parent / 'truth.csv', truth)
  return truth


def write_truth_csv(path: str | pathlib.Path, truth: Truth) -> None:
  """truth.csv: id, grade, cue (0/1), cue_box "x0 y0 x1 y1" (photo pixels; empty if no cue)."""
  with open(path, 'w', newline='', encoding='utf-8') as f:
    w = csv.writer(f)
    w.writerow(['id', 'grade', 'cue', 'cue_box'])
    for i, g, c, b in zip(truth.id, truth.grade, truth.cue, truth.cue_box):
      w.writerow([i, f'{g:.2f}', int(c),
                  ' '.join(f'{v:.2f}' for v in b) if c and np.isfinite(b).all() else ''])


def _numbers(value, count: int, what: str) -> np.ndarray:
  if isinstance(value, str):
    value = value.split()
  a = np.asarray(value, np.float64).ravel()
  if a.size != count:
    raise ValueError(f'{what}: expected {count} numbers, got {a.size} ({value!r}).')
  return a


def cue_mask_in_chip(box: Sequence[float] | str, chip_affine: np.ndarray | Sequence[float] | str,
                     size: int = 150) -> np.ndarray:
  """The cue box carried into the aligned chip: bool [size, size].

  Args:
    box: x0 y0 x1 y1 in photo pixels (4 numbers, or the truth.csv string).
    chip_affine: photo -> chip map, chip_x = a*x + b*y + c, chip_y = d*x + e*y + f, as float
      [2, 3], 6 numbers "a b c d e f" (the manifest's ``chip_affine``) or their string.
    size: chip side in pixels.

  Returns:
    True at the chip pixels (centres on integer coordinates, as in dlib) inside the mapped
    quadrilateral, i.e. whose photo pre-image lies in the box.
  """
  x0, y0, x1, y1 = _numbers(box, 4, 'cue box')
  a = _numbers(chip_affine, 6, 'chip_affine').reshape(2, 3)
  if abs(np.linalg.det(a[:, :2])) < 1e-12:
    raise ValueError(f'chip_affine {a.ravel().tolist()} is singular; cannot map the cue box.')
  inv = np.linalg.inv(a[:, :2])
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
  pts = np.stack([xx - a[0, 2], yy - a[1, 2]], axis=-1) @ inv.T  # [size, size, 2] photo (x, y)
  lo_x, hi_x = min(x0, x1), max(x0, x1)
  lo_y, hi_y = min(y0, y1), max(y0, y1)
  return ((pts[..., 0] >= lo_x) & (pts[..., 0] <= hi_x) &
          (pts[..., 1] >= lo_y) & (pts[..., 1] <= hi_y))


@dataclasses.dataclass(frozen=True)
class Command:
  """The ``demo_data`` command's options (defaults: :func:`write_demo_workbook`'s)."""
  out: str | None = option(None, 'the .xlsx to write (truth.csv goes beside it)', required=True)
  n: int = option(default_of(write_demo_workbook, 'n'), 'rows (students)')
  seed: int = option(default_of(write_demo_workbook, 'seed'), 'seed: same seed, same workbook')
  cue_strength: float = option(default_of(write_demo_workbook, 'cue_strength'),
                               'planted cue strength in [0, 1]; 0 = null world')
  cue_kind: str = option(default_of(write_demo_workbook, 'cue_kind'), 'sticker on the cheek, '
                         'a photo condition (jpeg compression, background, brightness, '
                         'sharpness, resolution, tint, vignette, noise, boxblur, gamma) or a facial one (eyeband, face_shape)',
                         choices=tuple(CUE_KINDS))
  cue_shape: str = option(default_of(write_demo_workbook, 'cue_shape'), 'the planted cue: a '
                          'round sticker on the cheekbone or a square tag low on the jaw',
                          choices=tuple(CUE_SHAPES))
  concepts: str | None = option(None, 'also write TCAV concept folders here (DIR/<concept>/, '
                                'DIR/random/: gradejax.data.concepts; for visualize --concepts)')
  concept_images: int = option(30, 'chips per concept folder (random/: 11x as many: TCAV '
                               'splits it into 10 random concepts and a counterexample pool)')
  workers: int = option(0, 'processes drawing the portraits (0: one per CPU core; the bytes '
                        'are the same for any count)')


def main(argv: Sequence[str]) -> None:
  del argv
  f = optlib.from_flags(Command)
  truth = write_demo_workbook(f.out, n=f.n, seed=f.seed, cue_strength=f.cue_strength,
                              cue_kind=f.cue_kind, cue_shape=f.cue_shape, workers=f.workers)
  fail = int((truth.grade < PASS_MARK).sum())
  print(f'wrote {f.out}: {len(truth.id)} rows ({len(truth.id) - fail} pass, {fail} fail at '
        f'{PASS_MARK}), cue on {int(truth.cue.sum())} photos (strength {f.cue_strength}); '
        f'ground truth in {pathlib.Path(f.out).parent / "truth.csv"}')
  if f.concepts:
    from gradejax.data import concepts  # dlib's aligner: only when asked
    counts = concepts.write_concept_folders(f.concepts, n=f.concept_images,
                                            n_random=11 * f.concept_images, seed=f.seed,
                                            workers=f.workers)
    print(f'wrote concept folders {counts} under {f.concepts}')


def command() -> None:
  """The ``gradejax.demo_data`` command: defines its flags, parses argv, runs :func:`main`."""
  from absl import app
  optlib.define_flags(Command)
  app.run(main)
