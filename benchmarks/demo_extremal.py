"""Extremal perturbations on the trained demo: pointing game and mass inside the planted cue
over ALL cue-bearing images of the held-out fold (the report's own measures and CIs), plus the
report's causal check of each map's top square.

  PYTHONPATH=$PWD JAX_PLATFORMS=cpu /work/main/.venv/bin/python benchmarks/demo_extremal.py \
      --workdir /tmp/h26-ws/runs/demo --truth /tmp/h26-ws/raw/truth.csv \
      [--areas 0.02,0.05,0.1,0.2] [--steps 800] [--batch 4] [--limit 0] [--out F.json]

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

from gradejax import nets  # noqa: E402
from gradejax.attribution import extremal  # noqa: E402
from gradejax.report import attribution_report as ar  # noqa: E402

WORKDIR = flags.DEFINE_string('workdir', 'workspace/runs/demo', 'trained demo run')
TRUTH = flags.DEFINE_string('truth', 'workspace/raw/truth.csv', 'the workbook truth.csv')
AREAS = flags.DEFINE_string('areas', ','.join(str(a) for a in extremal.DEFAULT_AREAS), 'areas')
STEPS = flags.DEFINE_integer('steps', extremal.REFERENCE_STEPS, 'optimisation steps')
VARIANT = flags.DEFINE_string('variant', 'delete', 'preserve or delete')
FILL = flags.DEFINE_string('fill_mode', 'inpaint', 'blur, inpaint or value (the report: inpaint)')
LR = flags.DEFINE_float('learning_rate', 0.01, 'the SGD rate at 800 steps (torchray: 0.01)')
BATCH = flags.DEFINE_integer('batch', 4, 'images per call')
LIMIT = flags.DEFINE_integer('limit', 0, 'only the first N images (a smoke test)')
OUT = flags.DEFINE_string('out', '', 'JSON results (default WORKDIR/localisation/extremal.json)')


def main(argv):
  del argv
  from gradejax.data import dataset
  from gradejax.training import runs
  module, variables, config = runs.load_trained(WORKDIR.value)
  arrays = dataset.load_arrays(config.data_dir)
  fn = nets.bind(module, variables)
  opts = ar.Options(truth=TRUTH.value, valid_fold=int(config.valid_fold), batch=BATCH.value,
                    fill_mode='inpaint')
  x, masks, note = ar.localisation_images(arrays, pathlib.Path(config.data_dir), opts, None,
                                          arrays['images'].shape[1], np.arange(8))
  if masks is None:
    raise SystemExit(note)
  if LIMIT.value:
    x, masks = x[:LIMIT.value], masks[:LIMIT.value]
  print(note, flush=True)
  targets = ar.predicted(fn, x, opts.batch)
  areas = tuple(float(a) for a in AREAS.value.split(','))
  out = pathlib.Path(OUT.value or pathlib.Path(WORKDIR.value) / 'localisation' / 'extremal.json')
  out.parent.mkdir(parents=True, exist_ok=True)
  t0 = time.time()
  per_area = []
  for i in range(0, len(x), opts.batch):
    r = extremal.extremal_perturbation(fn, x[i:i + opts.batch], targets[i:i + opts.batch],
                                       areas=areas, steps=STEPS.value, variant=VARIANT.value,
                                       fill_mode=FILL.value, blur_sigma=5.0 if
                                       FILL.value == 'inpaint' else 10.0,
                                       learning_rate=LR.value, precision='default')
    per_area.append(r.masks)
    print(f'  images {i}-{i + len(r.masks) - 1}: {time.time() - t0:.0f} s', flush=True)
  secs = time.time() - t0
  m = np.concatenate(per_area)  # [N, A, H, W]
  np.save(out.with_suffix('.npy'), m)
  maps = {'extremal (mean over areas)': m.mean(axis=1)}
  maps.update({f'extremal area {a}': m[:, j] for j, a in enumerate(areas)})
  rows = ar.localisation_rows(maps, masks, opts)
  causal = ar.causal_rows(fn, x, targets, {'extremal (mean over areas)': maps[
      'extremal (mean over areas)']}, opts, masks)
  result = dict(images=len(x), areas=areas, steps=STEPS.value, variant=VARIANT.value,
                seconds=secs, images_per_s=len(x) / secs, rows=rows,
                causal_top=causal[1][1], causal_random=causal[1][2], causal_cue=causal[0][1])
  out.write_text(json.dumps(result, indent=1, default=float))
  for row in rows:
    print(f'{row["method"]}: mass {ar._fmt_ci(row["mass"])} ({row["mass"][0] / row["area"]:.1f}x '
          f'uniform), pointing {ar._fmt_ci(row["pointing"])}, rank acc {ar._fmt_ci(row["rank"])}')
  print(f'top-square drop {ar._fmt_ci(causal[1][1])} vs random {ar._fmt_ci(causal[1][2])}; '
        f'cue removed {ar._fmt_ci(causal[0][1])}; {len(x)} images in {secs:.0f} s', flush=True)


if __name__ == '__main__':
  app.run(main)
