"""Where is the delete game's optimum? An exhaustive scan of the objective extremal
perturbation optimises, at one fixed shape: every square of ``--side`` px (stride ``--stride``)
removed with the report's fill, over the cue-bearing images of the held-out fold. For each
image it finds the square whose removal drops the explained score most and asks whether its
centre lies on the planted cue (the pointing game's tolerance). This is the pointing game of
a perfect optimiser of the delete game over squares of that area: no optimiser of the same
objective can point at the cue where another region of the same area drops the score more.

  JAX_PLATFORMS=cpu .venv/bin/python benchmarks/delete_game_optimum.py \
      --workdir W/runs/demo --truth W/raw/truth.csv [--side 21] [--stride 3] [--batch 4]

--side 21 is ~2% of a 150 px chip (extremal's smallest default area). Prints one line per
image (the best square's drop, the best square on the cue's, the best elsewhere's) and the
share on the cue for the predicted class's logit and for its contrast; writes the drop grids
next to --out. Nothing is tuned to the cue: the truth is read only to score.
"""
from __future__ import annotations

import json
import os
import pathlib
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import numpy as np  # noqa: E402
import scipy.ndimage  # noqa: E402
from absl import app, flags  # noqa: E402

WORKDIR = flags.DEFINE_string('workdir', 'workspace/runs/demo', 'trained demo run')
TRUTH = flags.DEFINE_string('truth', 'workspace/raw/truth.csv', 'the workbook truth.csv')
SIDE = flags.DEFINE_integer('side', 21, 'square side (px)')
STRIDE = flags.DEFINE_integer('stride', 3, 'scan stride (px)')
BATCH = flags.DEFINE_integer('batch', 4, 'images per call')
LIMIT = flags.DEFINE_integer('limit', 0, 'only the first N images (a smoke test)')
OUT = flags.DEFINE_string('out', '', 'JSON results (default WORKDIR/localisation/'
                          'delete_game_optimum.json)')


def on_cue(drops: np.ndarray, cue: np.ndarray, side: int, stride: int, tolerance: float
           ) -> np.ndarray:
  """bool [ny, nx]: the square at each scan position has its centre within ``tolerance`` px
  of the cue (the pointing game's rule applied to the square's centre)."""
  dist = scipy.ndimage.distance_transform_edt(~cue)
  ny, nx = drops.shape
  cy = np.clip(np.round(np.arange(ny) * stride + (side - 1) / 2).astype(int), 0, cue.shape[0] - 1)
  cx = np.clip(np.round(np.arange(nx) * stride + (side - 1) / 2).astype(int), 0, cue.shape[1] - 1)
  return dist[cy][:, cx] <= tolerance


def main(argv):
  del argv
  import jax
  import jax.numpy as jnp
  from gradejax import nets
  from gradejax.attribution import occlusion_sensitivity as occ
  from gradejax.attribution.battery import config as cfg_lib, maps as maps_lib
  from gradejax.attribution.battery import truth as truth_lib
  from gradejax.data import dataset
  from gradejax.training import runs
  module, variables, config = runs.load_trained(WORKDIR.value)
  arrays = dataset.load_arrays(config.data_dir)
  fn = nets.bind(module, variables)
  cfg = cfg_lib.Options(truth=TRUTH.value, valid_fold=int(config.valid_fold),
                        batch=BATCH.value, precision='default').config()
  x, masks, note, _ = truth_lib.localisation_images(
      arrays, pathlib.Path(config.data_dir), cfg.localisation, None, arrays['images'].shape[1],
      np.arange(8))
  if masks is None:
    raise SystemExit(note)
  x, masks = np.asarray(x), np.asarray(masks, bool)
  if LIMIT.value:
    x, masks = x[:LIMIT.value], masks[:LIMIT.value]
  print(note, flush=True)
  targets = np.asarray(maps_lib.predicted(fn, x, BATCH.value))
  side, stride = SIDE.value, STRIDE.value
  grid = jax.jit(lambda xb: occ.occlusion_all_outputs(
      fn, xb, patch=side, stride=stride, fill_mode=cfg.fill['fill_mode'],
      blur_sigma=cfg.fill['blur_sigma'], fill=cfg.fill['fill']))
  t0, grids = time.time(), []
  for i in range(0, len(x), BATCH.value):
    xb = x[i:i + BATCH.value]
    n = len(xb)
    if n < BATCH.value:  # pad the last call: no second compile
      xb = np.concatenate([xb, np.repeat(xb[-1:], BATCH.value - n, 0)])
    grids.append(np.asarray(grid(jnp.asarray(xb)))[:n])
    print(f'  images {i}-{i + n - 1}: {time.time() - t0:.0f} s', flush=True)
  g = np.concatenate(grids)  # [N, ny, nx, K] drop of every output
  tol = cfg.localisation.pointing_tolerance
  result = dict(images=len(x), side=side, stride=stride, area=side * side / x[0, ..., 0].size,
                positions=int(g.shape[1] * g.shape[2]), seconds=time.time() - t0,
                predicted=targets.tolist())
  for score in ('logit', 'contrast'):
    hits, rows = [], []
    for i in range(len(x)):
      d = g[i, :, :, targets[i]]
      if score == 'contrast':  # the predicted class's contrast to the mean of the others
        others = np.delete(g[i], targets[i], axis=-1).mean(axis=-1)
        d = d - others
      near = on_cue(d, masks[i], side, stride, tol)
      hit = bool(near[np.unravel_index(np.argmax(d), d.shape)])
      hits.append(hit)
      rows.append(dict(hit=hit, best=float(d.max()), best_on_cue=float(d[near].max()),
                       best_elsewhere=float(d[~near].max())))
      if score == 'logit':
        print(f'  image {i}: predicted {targets[i]}, {"on the cue" if hit else "elsewhere"}; '
              f'best {d.max():.2f}, best on the cue {d[near].max():.2f}, best elsewhere '
              f'{d[~near].max():.2f}')
    result[score] = dict(on_cue=int(sum(hits)), share=float(np.mean(hits)),
                         misses=[i for i, h in enumerate(hits) if not h], rows=rows)
    print(f'{score}: the delete game\'s optimum over {side} px squares is on the cue in '
          f'{sum(hits)} of {len(x)} images ({np.mean(hits):.3f})', flush=True)
  out = pathlib.Path(OUT.value or pathlib.Path(WORKDIR.value) / 'localisation' /
                     'delete_game_optimum.json')
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(result, indent=1))
  np.save(out.with_suffix('.npy'), g)
  print(f'wrote {out} ({len(x)} images, {time.time() - t0:.0f} s)')


if __name__ == '__main__':
  app.run(main)
