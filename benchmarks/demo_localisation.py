"""Localisation of the demo's planted cue over ALL cue-bearing images of the held-out fold, for
every attribution method (several settings each), with bootstrap CIs, and the causal check.

  PYTHONPATH=$PWD JAX_PLATFORMS=cpu .venv/bin/python benchmarks/demo_localisation.py \
      --workdir workspace/runs/demo --truth workspace/raw/truth.csv [--variants a,b] [--out F] \
      [--grids 24/8,20/4] [--rise 2000x8] [--multiscale 20/4+24/4]

``--grids P/S,...``: for each occluder size/stride, the inpainted occlusion drops of *every*
output (``occlusion_all_outputs``) are computed once (cached as ``grid_P_S.npy`` beside
``--out``) and four maps are derived from them with the library's own functions
(``class_score``, ``grid_to_pixels``): score 'logit' (the predicted class's) or 'contrast' (its
logit minus the other class's), aggregate 'centre' or 'mean' -- the same maps
``registry.heatmap('occlusion', ..., score=, aggregate=)`` returns. ``--multiscale a+b``
combines cached grids' centre maps with ``combine_scales`` (max and mean).
``--rise NxC``: RISE of every output (``rise_all_outputs``, inpaint, N masks of C x C cells),
cached, read as 'logit' and 'contrast'.

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
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from gradejax import nets  # noqa: E402
from gradejax.attribution import registry, rise  # noqa: E402
from gradejax.attribution import occlusion_sensitivity as occ  # noqa: E402
from gradejax.attribution.common import class_score, method  # noqa: E402
from gradejax.report import attribution_report as ar  # noqa: E402

WORKDIR = flags.DEFINE_string('workdir', 'workspace/runs/demo', 'trained demo run')
TRUTH = flags.DEFINE_string('truth', 'workspace/raw/truth.csv', 'the workbook truth.csv')
VARIANTS = flags.DEFINE_string('variants', '', 'comma-separated subset of VARIANTS (default all)')
OUT = flags.DEFINE_string('out', '', 'JSON results (default WORKDIR/localisation/results.json)')
BATCH = flags.DEFINE_integer('batch', 8, 'images per call')
GRIDS = flags.DEFINE_string('grids', '', 'occlusion P/S pairs computed once for every output')
RISE = flags.DEFINE_string('rise', '', 'RISE NxC (masks x cells) computed once for every output')
LIMIT = flags.DEFINE_integer('limit', 0, 'only the first N images (a smoke test)')
MULTISCALE = flags.DEFINE_string('multiscale', '', 'P/S+P/S groups of cached grids to combine')

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
    'rise 2000 x 8 cells inpaint': ('rise', dict(n_masks=2000, cells=8, chunk=50, unroll=False,
                                                 **INPAINT)),
    'xrai (integrated gradients)': ('xrai', dict(base='integrated_gradients', steps=32)),
}


# Every output's occlusion drops, jitted (the library's traceable helper; unrolled loops of a
# ResNet compile for minutes on a CPU and ran no faster here, so the loop stays rolled).
all_drops = method('patch', 'stride', 'chunk', 'unroll', 'fill_mode', 'blur_sigma')(
    occ.occlusion_all_outputs)


def _batched(f, x, batch):
  return np.concatenate([np.asarray(f(x[i:i + batch])) for i in range(0, len(x), batch)])


def _cached(path: pathlib.Path, compute):
  """(array, seconds to compute it; 0 when read from the cache)."""
  if path.is_file():
    return np.load(path), 0.0
  t0 = time.time()
  a = compute()
  secs = time.time() - t0
  np.save(path, a)
  (path.with_suffix('.seconds')).write_text(f'{secs:.1f}')
  return a, secs


def _secs(path: pathlib.Path, secs: float) -> float:
  f = path.with_suffix('.seconds')
  return secs or (float(f.read_text()) if f.is_file() else float('nan'))


def derived(fn, x, targets, out_dir: pathlib.Path, batch: int) -> dict:
  """Yields (name, (maps [N, H, W], method, options, seconds)) for --grids, --multiscale and
  --rise, each as soon as it is computed."""
  t = jnp.asarray(targets)
  centre = {}
  for spec in [g for g in GRIDS.value.split(',') if g]:
    p, st = (int(v) for v in spec.split('/'))
    path = out_dir / f'grid_{p}_{st}.npy'
    grid, secs = _cached(path, lambda: _batched(lambda xb: all_drops(
        fn, xb, patch=p, stride=st, chunk=16, unroll=False, precision='highest', **INPAINT),
        x, batch))
    secs = _secs(path, secs)
    for score in ('logit', 'contrast'):
      g = class_score(jnp.asarray(grid), t, score)
      for agg in ('centre', 'mean'):
        maps = np.asarray(occ.grid_to_pixels(g, x.shape[1:3], p, st, agg))
        kw = dict(patch=p, stride=st, aggregate=agg, score=score, **INPAINT)
        yield f'occlusion inpaint {p}/{st} {agg} {score}', (maps, 'occlusion', kw, secs)
        if agg == 'centre':
          centre[(spec, score)] = (maps, secs)
  for group in [g for g in MULTISCALE.value.split(',') if g]:
    parts = group.split('+')
    for score in ('logit', 'contrast'):
      got = [centre[(q, score)] for q in parts]
      for combine in ('max', 'mean'):
        maps = np.asarray(occ.combine_scales([jnp.asarray(m) for m, _ in got], combine))
        kw = dict(patches=[int(q.split('/')[0]) for q in parts],
                  strides=[int(q.split('/')[1]) for q in parts], aggregate='centre',
                  combine=combine, score=score, **INPAINT)
        yield f'occlusion_multiscale {group} centre {combine} {score}', (
            maps, 'occlusion_multiscale', kw, sum(s for _, s in got))
  if RISE.value:
    n, cells = (int(v) for v in RISE.value.split('x'))
    path = out_dir / f'rise_{n}_{cells}.npy'
    allmaps, secs = _cached(path, lambda: _batched(lambda xb: rise.rise_all_outputs(
        fn, xb, jax.random.key(0), n_masks=n, cells=cells, chunk=50, unroll=False,
        precision='highest', **INPAINT), x, batch))
    secs = _secs(path, secs)
    for score in ('logit', 'contrast'):
      maps = np.asarray(class_score(jnp.asarray(allmaps), t, score))
      yield f'rise {n} x {cells} cells inpaint {score}', (
          maps, 'rise', dict(n_masks=n, cells=cells, score=score, **INPAINT), secs)


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
  layer = ar.default_layer(fn, x)
  out = pathlib.Path(OUT.value or pathlib.Path(WORKDIR.value) / 'localisation' / 'results.json')
  out.parent.mkdir(parents=True, exist_ok=True)
  results = json.loads(out.read_text()) if out.is_file() else {}
  names = [v.strip() for v in VARIANTS.value.split(',') if v.strip()]
  if not (names or GRIDS.value or RISE.value):
    names = list(ALL)

  def record(name, maps, method_name, kw, secs):
    row = ar.localisation_rows({name: maps}, masks, opts)[0]
    causal = ar.causal_rows(fn, x, targets, {name: maps}, opts, masks)
    results[name] = dict(method=method_name, options=kw, seconds=secs,
                         mass=row['mass'], pointing=row['pointing'], rank=row['rank'],
                         area=row['area'], images=row['images'], meets=bool(row['meets']),
                         causal_top=causal[1][1], causal_random=causal[1][2],
                         causal_cue=causal[0][1])
    out.write_text(json.dumps(results, indent=1))
    print(f'{name}: {secs:.0f} s, mass {ar._fmt_ci(row["mass"])} '
          f'({row["mass"][0] / row["area"]:.1f}x uniform), pointing {ar._fmt_ci(row["pointing"])}, '
          f'rank acc {ar._fmt_ci(row["rank"])}, top-square drop {ar._fmt_ci(causal[1][1])} vs '
          f'random {ar._fmt_ci(causal[1][2])}; cue removed {ar._fmt_ci(causal[0][1])}'
          f'{"  MEETS TARGET" if row["meets"] else ""}', flush=True)

  for name in names:
    method_name, kw = ALL[name]
    t0 = time.time()
    maps = []
    for i in range(0, len(x), opts.batch):
      xb = x[i:i + opts.batch]
      maps.append(np.asarray(registry.heatmap(
          method_name, fn, xb, targets[i:i + opts.batch], layer=layer, key=jax.random.key(0),
          precision='highest', **kw)))
    maps = np.concatenate(maps)
    secs = time.time() - t0
    np.save(out.parent / f'maps_{len(results):02d}.npy', maps)
    record(name, maps, method_name, kw, secs)
  for name, (maps, method_name, kw, secs) in derived(fn, x, targets, out.parent, opts.batch):
    record(name, maps, method_name, kw, secs)

if __name__ == '__main__':
  app.run(main)
