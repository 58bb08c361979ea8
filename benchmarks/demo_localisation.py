"""Localisation of the demo's planted cue over ALL cue-bearing images of the held-out fold, for
every attribution method (several settings each), with bootstrap CIs, and the causal check.

  PYTHONPATH=$PWD JAX_PLATFORMS=cpu .venv/bin/python benchmarks/demo_localisation.py \
      --workdir workspace/runs/demo --truth workspace/raw/truth.csv [--variants a,b] [--out F] \
      [--grids 24/8,20/4] [--rise 2000x8] [--multiscale 20/4+24/4]

``--grids P/S,...``: for each occluder size/stride, the inpainted occlusion drops of *every*
output (``occlusion_all_outputs``) are computed once (cached as ``grid_P_S.npy`` beside
``--out``, batch by batch) and four maps are derived from them with the library's own functions
(``class_score``, ``grid_to_pixels``): score 'logit' (the predicted class's) or 'contrast' (its
logit minus the other class's), aggregate 'centre' or 'mean' -- the same maps
``registry.heatmap('occlusion', ..., score=, aggregate=)`` returns. ``--multiscale a+b``
combines cached grids' centre maps with ``combine_scales`` (max and mean).
``--keep_grids P/S,...``: the same grids with everything *but* the square filled (the
preservation game over squares, ``keep=True``); their maps are the negated drops, so the map's
maximum is the square that alone keeps the score highest, and the 'why' line's "drop" reads as
that kept score.
``--rise NxC``: RISE of every output (``rise_all_outputs``, inpaint, N masks of C x C cells),
cached, read as 'logit' and 'contrast'.

Uses the battery's own functions (gradejax.attribution.battery: localisation_images /
localisation_rows / causal_rows), so the numbers are what the report prints. Each variant's maps are saved to
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

from gradejax.attribution import registry, rise  # noqa: E402
from gradejax.attribution import occlusion_sensitivity as occ  # noqa: E402
from gradejax.attribution.common import class_score, method  # noqa: E402
from gradejax.attribution import battery as ar  # noqa: E402
from gradejax.attribution.battery import checks  # noqa: E402

import fold_cues  # noqa: E402  (benchmarks/fold_cues.py)

WORKDIR = flags.DEFINE_string('workdir', 'workspace/runs/demo', 'trained demo run')
TRUTH = flags.DEFINE_string('truth', 'workspace/raw/truth.csv', 'the workbook truth.csv')
VARIANTS = flags.DEFINE_string('variants', '', 'comma-separated subset of VARIANTS (default all)')
OUT = flags.DEFINE_string('out', '', 'JSON results (default WORKDIR/localisation/results.json)')
BATCH = flags.DEFINE_integer('batch', 8, 'images per call')
GRIDS = flags.DEFINE_string('grids', '', 'occlusion P/S pairs computed once for every output')
KEEP_GRIDS = flags.DEFINE_string('keep_grids', '', 'the same with everything but the square '
                                 'filled (the preservation game over squares)')
RISE = flags.DEFINE_string('rise', '', 'RISE NxC (masks x cells) computed once for every output')
WHY_ONLY = flags.DEFINE_boolean('why_only', False, 'cached grids: print the miss analysis only')
SKIP_DONE = flags.DEFINE_boolean('skip_done', False, 'do not re-measure names already in --out')
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
all_drops = method('patch', 'stride', 'chunk', 'unroll', 'fill_mode', 'blur_sigma', 'keep')(
    occ.occlusion_all_outputs)


def _cached(path: pathlib.Path, f, x, batch: int):
  """``f`` over ``x`` in batches, each batch cached as ``path.partNN.npy`` (an interrupted run
  resumes; ``--limit`` reuses the first batches) -> (array, seconds of compute, summed over
  the batches, cached ones included)."""
  if path.is_file():  # a whole run's array (written by an earlier version of this script)
    a, sf = np.load(path), path.with_suffix('.seconds')
    if len(a) >= len(x):
      return a[:len(x)], float(sf.read_text()) * len(x) / len(a) if sf.is_file() else float('nan')
  out, secs = [], 0.0
  for k, i in enumerate(range(0, len(x), batch)):
    part = path.with_name(f'{path.stem}.b{batch}.part{k:02d}.npy')
    if part.is_file():
      out.append(np.load(part))
      secs += float(part.with_suffix('.seconds').read_text())
      continue
    t0 = time.time()
    out.append(np.asarray(f(x[i:i + batch])))
    dt = time.time() - t0
    np.save(part, out[-1])
    part.with_suffix('.seconds').write_text(f'{dt:.1f}')
    secs += dt
    print(f'  {path.stem}: images {i}-{i + len(out[-1]) - 1} in {dt:.0f} s', flush=True)
  return np.concatenate(out), secs


def _why(grid: np.ndarray, masks: np.ndarray, patch: int, stride: int, name: str) -> None:
  """Why the pointing game misses, from the drops themselves: per image, the largest drop of
  a patch hiding the whole cue, of one hiding part of it, and of one touching none of it;
  printed as medians and the share of images where a cue-free patch drops the score more."""
  ny, nx = grid.shape[1:]
  y0 = np.arange(ny) * stride
  x0 = np.arange(nx) * stride
  whole, part, free = [], [], []
  for g, m in zip(grid, masks):
    rows, cols = np.nonzero(m.any(1))[0], np.nonzero(m.any(0))[0]
    cy = (y0 <= rows[0]) & (y0 + patch > rows[-1])  # the patch spans the cue's rows
    cx = (x0 <= cols[0]) & (x0 + patch > cols[-1])
    oy = (y0 <= rows[-1]) & (y0 + patch > rows[0])  # it overlaps them
    ox = (x0 <= cols[-1]) & (x0 + patch > cols[0])
    covers, touches = cy[:, None] & cx[None], oy[:, None] & ox[None]
    whole.append(g[covers].max() if covers.any() else np.nan)
    part.append(g[touches & ~covers].max() if (touches & ~covers).any() else np.nan)
    free.append(g[~touches].max())
  whole, part, free = map(np.array, (whole, part, free))
  print(f'  why ({name}): patches hiding the whole cue exist in {np.isfinite(whole).sum()}/'
        f'{len(whole)} images; best drop, median over images: whole cue hidden '
        f'{np.nanmedian(whole):.3f}, part of it {np.nanmedian(part):.3f}, none of it '
        f'{np.median(free):.3f}; a cue-free patch drops more than every cue-hiding one in '
        f'{np.mean(free > np.fmax(np.nan_to_num(whole, nan=-np.inf), part)):.3f} of images',
        flush=True)


def derived(fn, x, masks, targets, out_dir: pathlib.Path, batch: int):
  """Yields (name, (maps [N, H, W], method, options, seconds)) for --grids, --multiscale and
  --rise, each as soon as it is computed."""
  t = jnp.asarray(targets)
  centre = {}
  specs = [(g, False) for g in GRIDS.value.split(',') if g]
  specs += [(g, True) for g in KEEP_GRIDS.value.split(',') if g]
  for spec, keep in specs:
    p, st = (int(v) for v in spec.split('/'))
    path = out_dir / f'{"keep" if keep else "grid"}_{p}_{st}.npy'
    grid, secs = _cached(path, lambda xb: all_drops(
        fn, xb, patch=p, stride=st, chunk=16, unroll=False, keep=keep, precision='highest',
        **INPAINT), x, batch)
    for score in ('logit', 'contrast'):
      # The preservation game's best square keeps the score highest: its drop is the lowest.
      g = class_score(jnp.asarray(grid), t, score) * (-1 if keep else 1)
      _why(np.asarray(g), masks, p, st, f'{"keep " if keep else ""}{p}/{st} {score}')
      for agg in ('centre', 'mean'):
        maps = np.asarray(occ.grid_to_pixels(g, x.shape[1:3], p, st, agg))
        kw = dict(patch=p, stride=st, aggregate=agg, score=score, keep=keep, **INPAINT)
        game = 'preserve-game squares' if keep else 'occlusion'
        yield f'{game} inpaint {p}/{st} {agg} {score}', (maps, 'occlusion', kw, secs)
        if agg == 'centre' and not keep:
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
    allmaps, secs = _cached(path, lambda xb: rise.rise_all_outputs(
        fn, xb, jax.random.key(0), n_masks=n, cells=cells, chunk=50, unroll=False,
        precision='highest', **INPAINT), x, batch)
    for score in ('logit', 'contrast'):
      maps = np.asarray(class_score(jnp.asarray(allmaps), t, score))
      yield f'rise {n} x {cells} cells inpaint {score}', (
          maps, 'rise', dict(n_masks=n, cells=cells, score=score, **INPAINT), secs)


def main(argv):
  del argv
  fn, cfg, x, masks = fold_cues.load(WORKDIR.value, TRUTH.value, BATCH.value, LIMIT.value,
                                     fill_mode='inpaint')
  targets = ar.predicted(fn, x, BATCH.value)
  layer = ar.default_layer(fn, x)
  out = pathlib.Path(OUT.value or pathlib.Path(WORKDIR.value) / 'localisation' / 'results.json')
  out.parent.mkdir(parents=True, exist_ok=True)
  results = json.loads(out.read_text()) if out.is_file() else {}
  names = [v.strip() for v in VARIANTS.value.split(',') if v.strip()]
  if not (names or GRIDS.value or KEEP_GRIDS.value or RISE.value):
    names = list(ALL)

  def record(name, maps, method_name, kw, secs):
    row = checks.localisation_rows({name: maps}, masks, cfg.localisation)[0]
    causal = checks.causal_rows(fn, x, targets, {name: maps}, cfg, masks)
    results[name] = dict(method=method_name, options=kw, seconds=secs,
                         mass=row.mass, pointing=row.pointing, rank=row.rank,
                         area=row.area, images=row.images, meets=bool(row.meets),
                         causal_top=causal[1].drop, causal_random=causal[1].random_drop,
                         causal_cue=causal[0].drop)
    out.write_text(json.dumps(results, indent=1))
    fmt = lambda c: f'{c[0]:.3f} [{c[1]:.3f}, {c[2]:.3f}]'
    print(f'{name}: {secs:.0f} s, mass {fmt(row.mass)} '
          f'({row.mass[0] / row.area:.1f}x uniform), pointing {fmt(row.pointing)}, '
          f'rank acc {fmt(row.rank)}, top-square drop {fmt(causal[1].drop)} vs '
          f'random {fmt(causal[1].random_drop)}; cue removed {fmt(causal[0].drop)}'
          f'{"  MEETS TARGET" if row.meets else ""}', flush=True)

  for name in names:
    method_name, kw = ALL[name]
    t0 = time.time()
    maps = []
    for i in range(0, len(x), BATCH.value):
      xb = x[i:i + BATCH.value]
      maps.append(np.asarray(registry.heatmap(
          method_name, fn, xb, targets[i:i + BATCH.value], layer=layer, key=jax.random.key(0),
          precision='highest', **kw)))
    maps = np.concatenate(maps)
    secs = time.time() - t0
    np.save(out.parent / f'maps_{len(results):02d}.npy', maps)
    record(name, maps, method_name, kw, secs)
  for name, (maps, method_name, kw, secs) in derived(fn, x, masks, targets, out.parent,
                                                     BATCH.value):
    if not WHY_ONLY.value and not (SKIP_DONE.value and name in results):
      record(name, maps, method_name, kw, secs)

if __name__ == '__main__':
  app.run(main)
