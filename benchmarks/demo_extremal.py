"""Extremal perturbations on the trained demo: pointing game and mass inside the planted cue
over ALL cue-bearing images of the held-out fold (the report's own measures and CIs), plus the
report's causal check of each map's top square.

  PYTHONPATH=$PWD JAX_PLATFORMS=cpu /work/main/.venv/bin/python benchmarks/demo_extremal.py \
      --workdir /tmp/h26-ws/runs/demo --truth /tmp/h26-ws/raw/truth.csv \
      [--areas 0.02,0.05,0.1,0.2] [--steps 800] [--batch 4] [--limit 0] [--out F.json] \
      [--init occlusion|scan] [--starts K] [--noguard]

Nothing here looks at the cue: the areas, steps and fill are the library's defaults unless
given, the explained class is the predicted one, and the truth masks are read only to score.
"""
from __future__ import annotations

import json
import os
import pathlib
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import fold_cues  # noqa: E402  (benchmarks/fold_cues.py)

from gradejax.attribution import extremal, registry  # noqa: E402

WORKDIR = flags.DEFINE_string('workdir', 'workspace/runs/demo', 'trained demo run')
TRUTH = flags.DEFINE_string('truth', 'workspace/raw/truth.csv', 'the workbook truth.csv')
AREAS = flags.DEFINE_string('areas', ','.join(str(a) for a in extremal.DEFAULT_AREAS), 'areas')
STEPS = flags.DEFINE_integer('steps', None, 'optimisation steps (default: the optimiser\'s)')
VARIANT = flags.DEFINE_string('variant', 'delete', 'preserve or delete')
SCORE = flags.DEFINE_enum('score', 'logit', ['logit', 'contrast'], 'what the masks explain: the '
                          "predicted class's logit or its contrast (common.class_score)")
FILL = flags.DEFINE_string('fill_mode', 'inpaint', 'blur, inpaint or value (the report: inpaint)')
OPTIMISER = flags.DEFINE_string('optimiser', 'adam', 'adam or torchray')
REWARD = flags.DEFINE_string('reward', 'normalised', 'normalised or raw')
SCALE = flags.DEFINE_float('reward_scale', extremal.REWARD_SCALE, 'normalised reward scale')
LR = flags.DEFINE_float('learning_rate', None, 'default: the optimiser\'s')
BATCH = flags.DEFINE_integer('batch', 4, 'images per call')
LIMIT = flags.DEFINE_integer('limit', 0, 'only the first N images (a smoke test)')
OUT = flags.DEFINE_string('out', '', 'JSON results (default WORKDIR/localisation/extremal.json)')
INIT = flags.DEFINE_enum('init', 'none', ['none', 'occlusion', 'scan', 'empty'], 'start each mask '
                         "from the report's occlusion map's top regions "
                         "(extremal_starts.init_params), "
                         "from a scan with a square of each mask's own area "
                         "(extremal_starts.scan_starts: start='scan'), or from the clean image")
STARTS = flags.DEFINE_integer('starts', 1, 'starts per image and area from the start map '
                              '(extremal_starts.start_regions; needs --init occlusion or scan)')
GUARD = flags.DEFINE_bool('guard', True, 'with a start map, return the start region where it '
                          'plays the game better than the optimised mask (extremal guard)')


def main(argv):
  del argv
  from gradejax.attribution.battery import checks
  from gradejax.attribution.battery import maps as maps_lib
  fn, cfg, x, masks = fold_cues.load(WORKDIR.value, TRUTH.value, BATCH.value, LIMIT.value,
                                     precision='default')
  targets = maps_lib.predicted(fn, x, BATCH.value)
  areas = tuple(float(a) for a in AREAS.value.split(','))
  out = pathlib.Path(OUT.value or pathlib.Path(WORKDIR.value) / 'localisation' / 'extremal.json')
  out.parent.mkdir(parents=True, exist_ok=True)
  kw = dict(areas=areas, steps=STEPS.value, variant=VARIANT.value, fill_mode=FILL.value,
            blur_sigma=cfg.fill['blur_sigma'], optimiser=OPTIMISER.value, reward=REWARD.value,
            reward_scale=SCALE.value, learning_rate=LR.value, starts=STARTS.value,
            score=SCORE.value, guard=GUARD.value,
            precision='default')
  inputs = maps_lib.Inputs(cfg, maps_lib.default_layer(fn, x))
  t0 = time.time()
  per_area, occ, kept = [], [], []
  for i in range(0, len(x), BATCH.value):
    xb, tb = x[i:i + BATCH.value], targets[i:i + BATCH.value]
    n = len(xb)
    if n < BATCH.value < len(x):  # pad the last call: no second compile
      xb = np.concatenate([xb, np.repeat(xb[-1:], BATCH.value - n, 0)])
      tb = np.concatenate([tb, np.repeat(tb[-1:], BATCH.value - n, 0)])
    init = None
    if INIT.value == 'occlusion':  # the report's occlusion, as the battery computes it
      init = np.asarray(registry.heatmap('occlusion', fn, xb, tb, **inputs('occlusion', fn, xb)))
      occ.append(init[:n])
    r = extremal.extremal_perturbation(fn, xb, tb, init=init,
                                       start=INIT.value if INIT.value in ('scan', 'empty') else 'clean', **kw)
    per_area.append(r.masks[:n])
    if r.kept is not None:  # which candidate each image and area returned (>= starts: a start)
      kept.append(r.kept[:n] >= STARTS.value)
    print(f'  images {i}-{i + n - 1}: {time.time() - t0:.0f} s', flush=True)
  secs = time.time() - t0
  m = np.concatenate(per_area)  # [N, A, H, W]
  np.save(out.with_suffix('.npy'), m)
  maps = {'extremal (mean over areas)': m.mean(axis=1)}
  maps.update({f'extremal area {a}': m[:, j] for j, a in enumerate(areas)})
  if occ:
    maps['occlusion (the start)'] = np.concatenate(occ)
  rows = checks.localisation_rows(maps, masks, cfg.localisation)
  causal = checks.causal_rows(fn, x, targets, {'extremal (mean over areas)': maps[
      'extremal (mean over areas)']}, cfg, masks)
  kept_share = np.concatenate(kept).mean(axis=0) if kept else None  # per area
  result = dict(images=len(x), options={k: v for k, v in kw.items()}, seconds=secs,
                images_per_s=len(x) / secs,
                rows=[dict(method=r.method, mass=r.mass, pointing=r.pointing, area=r.area)
                      for r in rows],
                causal_top=causal[1].drop, causal_random=causal[1].random_drop,
                causal_cue=causal[0].drop,
                start_kept=kept_share.tolist() if kept else None)
  out.write_text(json.dumps(result, indent=1, default=float))
  f = lambda c: f'{c[0]:.3f} [{c[1]:.3f}, {c[2]:.3f}]'
  for row in rows:
    print(f'{row.method}: mass {f(row.mass)} ({row.mass[0] / row.area:.1f}x uniform), '
          f'pointing {f(row.pointing)}')
  if kept:
    print('start region returned (the guard) per area: ' + ', '.join(
        f'{a}: {v:.3f}' for a, v in zip(areas, kept_share)))
  print(f'top-square drop {f(causal[1].drop)} vs random {f(causal[1].random_drop)}; '
        f'cue removed {f(causal[0].drop)}; {len(x)} images in {secs:.0f} s', flush=True)


if __name__ == '__main__':
  app.run(main)
