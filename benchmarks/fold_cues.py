"""What the demo benchmarks of localisation share: a trained demo run, bound, and the
cue-bearing images of its held-out fold with their cue masks, as the report's battery measures
them (gradejax.attribution.battery.truth.localisation_images).

  fn, cfg, x, masks = fold_cues.load(workdir, truth, batch=4, limit=0, fill_mode='inpaint')

Imported by benchmarks/demo_extremal.py and demo_localisation.py (each puts the repository on
sys.path first).
"""
from __future__ import annotations

import pathlib

import numpy as np


def load(workdir: str, truth: str, batch: int, limit: int = 0, **options):
  """-> (fn, the battery's config, images float [N, H, W, 3], cue masks bool [N, H, W]);
  ``options``: more battery options (e.g. fill_mode, precision); ``limit``: only the first N
  images (a smoke test). Prints the battery's note on the images; exits with it when the run
  has no cue to score."""
  from gradejax import nets
  from gradejax.attribution.battery import config as cfg_lib, truth as truth_lib
  from gradejax.data import dataset
  from gradejax.training import runs
  module, variables, config = runs.load_trained(workdir)
  arrays = dataset.load_arrays(config.data_dir)
  cfg = cfg_lib.Options(truth=truth, valid_fold=int(config.valid_fold), batch=batch,
                        **options).config()
  x, masks, note, _ = truth_lib.localisation_images(
      arrays, pathlib.Path(config.data_dir), cfg.localisation, None, arrays['images'].shape[1],
      np.arange(8))
  if masks is None:
    raise SystemExit(note)
  x, masks = np.asarray(x), np.asarray(masks, bool)
  if limit:
    x, masks = x[:limit], masks[:limit]
    note += f' (--limit: the first {len(x)} of them)'
  print(note, flush=True)
  return nets.bind(module, variables), cfg, x, masks
