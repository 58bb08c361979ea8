"""The small prepared folder and tiny trained runs that tests/test_train.py and
tests/test_reruns.py share (session fixtures in tests/conftest.py): one preparation, one
training, one evaluation for both files."""
import pathlib

import numpy as np
import skimage.data

from configs import toy
from fixtures import xlsx_builders as xb
from gradejax.data import prepare


def make_data_dir(root: pathlib.Path) -> pathlib.Path:
  """24 real photos (astronaut crops, random shifts and brightness), prepared with 3 folds."""
  a = skimage.data.astronaut()
  rng = np.random.default_rng(0)
  rows = []
  for i in range(24):
    dy, dx = rng.integers(0, 40, 2)
    img = a[10 + dy:266 + dy, 80 + dx:336 + dx].astype(np.float32) * rng.uniform(0.7, 1.1)
    rows.append((f's{i:02d}', float(np.round(rng.uniform(2, 6), 1)),
                 xb.png_bytes(np.clip(img, 0, 255).astype(np.uint8))))
  wb = xb.write_workbook(root / 'wb.xlsx', rows)
  prepare.prepare(wb, root / 'data', prepare.Options(folds=3))
  return root / 'data'


def config_for(data_dir, **kw):
  """The toy config on ``data_dir``, no evaluation, 3 CV folds, ``kw`` overrides."""
  c = toy.get_config()
  c.data_dir = str(data_dir)
  c.evaluate = False
  c.cv_folds = 3
  for k, v in kw.items():
    c[k] = v
  return c


def tiny_evaluation(c):
  """``c`` with an evaluation of seconds (10 permutations, 10 bootstrap draws, 10 CV steps)."""
  c.evaluate, c.num_permutations, c.permutation_chunk, c.bootstrap = True, 10, 10, 10
  c.cv_head.steps = 10
  return c
