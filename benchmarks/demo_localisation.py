"""Localisation of the demo's planted cue over ALL cue-bearing images of the held-out fold, for
every attribution method (several settings each), with bootstrap CIs, and the causal check.

  PYTHONPATH=$PWD JAX_PLATFORMS=cpu .venv/bin/python benchmarks/demo_localisation.py \
      --workdir workspace/runs/demo --truth workspace/raw/truth.csv [--variants a,b] [--out F]

Uses the report's own functions (attribution_report.localisation_images / localisation_rows /
causal_rows), so the numbers are what the report prints. Each variant's maps are saved to
``--out``'s folder as they finish (a long CPU run keeps what it has).
"""
from __future__ import annotations

import json
import os
import pathlib
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from gradejax import nets  # noqa: E402
from gradejax.attribution import registry  # noqa: E402
from gradejax.report import attribution_report as ar  # noqa: E402

WORKDIR = flags.DEFINE_string('workdir', 'workspace/runs/demo', 'trained demo run')
TRUTH = flags.DEFINE_string('truth', 'workspace/raw/truth.csv', 'the workbook truth.csv')
VARIANTS = flags.DEFINE_string('variants', '', 'comma-separated subset of VARIANTS (default all)')
OUT = flags.DEFINE_string('out', '', 'JSON results (default WORKDIR/localisation/results.json)')
BATCH = flags.DEFINE_integer('batch', 8, 'images per call')

INPAINT = dict(fill_mode='inpaint', blur_sigma=5.0)
# name -> (registry method, its options). The report's defaults where not said otherwise.
ALL = {
    'saliency': ('saliency', {}),
    'integrated_gradients': ('integrated_gradients', dict(steps=32)),
    'grad_cam': ('grad_cam', {}),
    'occlusion grey 15/15 (earlier report)': ('occlusion', dict(patch=15, stride=15, fill=0.5)),
    'occlusion inpaint 24/8 centre': ('occlusion', dict(patch=24, stride=8, aggregate='centre',
                                                        **INPAINT)),
    'occlusion inpaint 24/4 centre': ('occlusion', dict(patch=24, stride=4, aggregate='centre',
                                                        **INPAINT)),
    'occlusion inpaint 32/8 centre': ('occlusion', dict(patch=32, stride=8, aggregate='centre',
                                                        **INPAINT)),
    'superpixel_ablation 64 inpaint': ('superpixel_ablation', dict(n_segments=64, **INPAINT)),
    'kernel_shap 64 x 128 inpaint': ('kernel_shap', dict(n_segments=64, n_samples=128,
                                                         **INPAINT)),
    'rise 300 x 8 cells inpaint': ('rise', dict(n_masks=300, cells=8, chunk=50, unroll=False,
                                                **INPAINT)),
    'xrai (integrated gradients)': ('xrai', dict(base='integrated_gradients', steps=32)),
}


def main(argv):
  del argv
  from gradejax.data import dataset
  from gradejax.training import train
  module, variables, config = train.load_trained(WORKDIR.value)
  arrays = dataset.load_arrays(config.data_dir)
  fn = nets.bind(module, variables)
  opts = ar.Options(truth=TRUTH.value, valid_fold=int(config.valid_fold), batch=BATCH.value,
                    fill_mode='inpaint')
  x, masks, note = ar.localisation_images(arrays, pathlib.Path(config.data_dir), opts, None,
                                          arrays['images'].shape[1], np.arange(8))
  if masks is None:
    raise SystemExit(note)
  print(note, flush=True)
  targets = ar.predicted(fn, x, opts.batch)
  layer = ar.default_layer(fn, x)
  out = pathlib.Path(OUT.value or pathlib.Path(WORKDIR.value) / 'localisation' / 'results.json')
  out.parent.mkdir(parents=True, exist_ok=True)
  results = json.loads(out.read_text()) if out.is_file() else {}
  names = [v.strip() for v in VARIANTS.value.split(',') if v.strip()] or list(ALL)
  for name in names:
    method, kw = ALL[name]
    t0 = time.time()
    maps = []
    for i in range(0, len(x), opts.batch):
      xb = x[i:i + opts.batch]
      maps.append(np.asarray(registry.heatmap(
          method, fn, xb, targets[i:i + opts.batch], layer=layer, key=jax.random.key(0),
          precision='highest', **kw)))
    maps = np.concatenate(maps)
    secs = time.time() - t0
    np.save(out.parent / f'maps_{len(results):02d}.npy', maps)
    row = ar.localisation_rows({name: maps}, masks, opts)[0]
    causal = ar.causal_rows(fn, x, targets, {name: maps}, opts, masks)
    results[name] = dict(method=method, options=kw, seconds=secs,
                         mass=row['mass'], pointing=row['pointing'], rank=row['rank'],
                         area=row['area'], images=row['images'], meets=bool(row['meets']),
                         causal_top=causal[1][1], causal_random=causal[1][2],
                         causal_cue=causal[0][1])
    out.write_text(json.dumps(results, indent=1))
    print(f'{name}: {secs:.0f} s, mass {ar._fmt_ci(row["mass"])} '
          f'({row["mass"][0] / row["area"]:.1f}x uniform), pointing {ar._fmt_ci(row["pointing"])}, '
          f'rank acc {ar._fmt_ci(row["rank"])}, top-square drop {ar._fmt_ci(causal[1][1])} vs '
          f'random {ar._fmt_ci(causal[1][2])}; cue removed {ar._fmt_ci(causal[0][1])}',
          flush=True)


if __name__ == '__main__':
  app.run(main)
