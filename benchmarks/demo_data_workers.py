"""The demo workbook (step 1 of scripts/demo.sh) drawn in one process and in one per core, side
by side in one run: seconds, the ratio, and that the pictures, truth.csv and concept chips are
byte-identical.

  python benchmarks/demo_data_workers.py [--n 430] [--concept_images 20]
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import tempfile
import time
import zipfile

from absl import app, flags

from gradejax.data import concepts, demo_data

N = flags.DEFINE_integer('n', 430, 'workbook rows')
CONCEPT_IMAGES = flags.DEFINE_integer('concept_images', 20, 'chips per concept (random: 3x)')


def _digests(root: pathlib.Path) -> dict[str, str]:
  out = {}
  with zipfile.ZipFile(root / 'demo.xlsx') as z:
    for name in z.namelist():
      if name.startswith('xl/media/'):
        out[name] = hashlib.sha1(z.read(name)).hexdigest()
  out['truth.csv'] = hashlib.sha1((root / 'truth.csv').read_bytes()).hexdigest()
  for p in sorted((root / 'concepts').rglob('*.png')):
    out[str(p.relative_to(root))] = hashlib.sha1(p.read_bytes()).hexdigest()
  return out


def _one(root: pathlib.Path, workers: int) -> float:
  t0 = time.perf_counter()
  demo_data.write_demo_workbook(root / 'demo.xlsx', n=N.value, seed=0, cue_strength=0.8,
                                workers=workers)
  concepts.write_concept_folders(root / 'concepts', n=CONCEPT_IMAGES.value,
                                 n_random=3 * CONCEPT_IMAGES.value, seed=0, workers=workers)
  return time.perf_counter() - t0


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as tmp:
    a, b = pathlib.Path(tmp) / 'one', pathlib.Path(tmp) / 'all'
    t1 = _one(a, 1)
    tn = _one(b, 0)
    same = _digests(a) == _digests(b)
    print(f'{N.value} rows + concept folders on {os.cpu_count()} cores: one process {t1:.1f} s, '
          f'one per core {tn:.1f} s, ratio {t1 / tn:.2f}x; '
          f'{len(_digests(a))} files {"byte-identical" if same else "DIFFER"}')
    if not same:
      raise SystemExit(1)


if __name__ == '__main__':
  app.run(main)
