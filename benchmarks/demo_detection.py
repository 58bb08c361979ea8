"""Does dlib's HOG detector find the demo workbook's synthetic faces?

  .venv/bin/python benchmarks/demo_detection.py [--n 430] [--seed 0] [--cue_strength 0.0]
      [--grid /tmp/demo_samples.png]

Writes the demo workbook (default: the 430-row workbook of scripts/demo.sh at its seed), reads
every photo back through gradejax.workbook (the JPEG bytes prepare sees), runs
``dlib.get_frontal_face_detector().run(image, 1, 0)`` on each and prints the detection rate (with
and without the planted sticker), detector scores, ms per portrait for drawing and for detection,
and saves a grid of 8 sample portraits.
"""
from __future__ import annotations

import datetime
import io
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import dlib  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from PIL import Image  # noqa: E402

from gradejax.data import demo_data, portraits, workbook  # noqa: E402

N = flags.DEFINE_integer('n', 430, 'rows of the demo workbook')
SEED = flags.DEFINE_integer('seed', 0, 'workbook seed')
CUE = flags.DEFINE_float('cue_strength', 0.0, 'planted cue strength (0: half the photos carry it)')
GRID = flags.DEFINE_string('grid', '/tmp/demo_samples.png', 'where to save 8 sample portraits')


def cpu_model() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      return next(l.split(':', 1)[1].strip() for l in f if l.startswith('model name'))
  except (OSError, StopIteration):
    return platform.processor() or platform.machine()


def main(argv) -> None:
  del argv
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'demo.xlsx')
    start = time.perf_counter()
    truth = demo_data.write_demo_workbook(path, n=N.value, seed=SEED.value,
                                          cue_strength=CUE.value)
    write_s = time.perf_counter() - start
    photos = [r.photo.data for r in workbook.read_workbook(path).rows]
  images = [np.asarray(Image.open(io.BytesIO(d)).convert('RGB')) for d in photos]
  detector = dlib.get_frontal_face_detector()
  found, scores, times = [], [], []
  for image in images:
    t = time.perf_counter()
    rects, s, _ = detector.run(image, 1, 0)
    times.append(time.perf_counter() - t)
    found.append(len(rects) >= 1)
    scores.append(max(s) if len(s) else np.nan)
  found, scores = np.array(found), np.array(scores)
  cue = truth.cue.astype(bool)
  n = len(images)
  print(f'date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: '
        f'{cpu_model()}, nproc={os.cpu_count()}, load average {os.getloadavg()[0]:.2f}; '
        f'dlib {dlib.__version__}')
  print(f'workbook: n={n}, seed={SEED.value}, cue_strength={CUE.value}; written in '
        f'{write_s:.1f} s ({1000 * write_s / n:.0f} ms per row: drawing, JPEG, xlsx)')
  print(f'HOG detection rate: {found.mean():.4f} ({found.sum()}/{n}); with sticker '
        f'{found[cue].mean():.4f} ({found[cue].sum()}/{cue.sum()}), without '
        f'{found[~cue].mean():.4f} ({found[~cue].sum()}/{(~cue).sum()})')
  # Skin tone and yaw are where a drawn face is hardest for HOG: report the rate by each.
  params = [portraits.sample_params(np.random.default_rng([SEED.value, r, 0])) for r in range(n)]
  dark = np.array([p['skin'].mean() for p in params]) < 0.48  # the 3 darkest of 8 tones
  turned = np.abs([p['yaw'] for p in params]) > 0.06
  print(f'by skin: 3 darkest of 8 tones {found[dark].mean():.4f} ({found[dark].sum()}/{dark.sum()}), '
        f'5 lighter {found[~dark].mean():.4f} ({found[~dark].sum()}/{(~dark).sum()}); by yaw: '
        f'|yaw| > 0.06 rad {found[turned].mean():.4f} ({found[turned].sum()}/{turned.sum()}), '
        f'smaller {found[~turned].mean():.4f} ({found[~turned].sum()}/{(~turned).sum()})')
  print(f'detector score (found faces): median {np.nanmedian(scores):.2f}, 10th percentile '
        f'{np.nanpercentile(scores, 10):.2f}')
  print(f'HOG time: {1000 * np.median(times):.1f} ms per portrait (median), '
        f'{1000 * np.mean(times):.1f} mean, upsample 1, {images[0].shape[1]}x{images[0].shape[0]}')
  print(f'missed rows (0-based): {np.nonzero(~found)[0].tolist()}')
  if GRID.value:
    rows = [np.concatenate(images[k:k + 4], 1) for k in (0, 4)]
    Image.fromarray(np.concatenate(rows, 0)).save(GRID.value)
    print(f'8 sample portraits: {GRID.value}')


if __name__ == '__main__':
  app.run(main)
