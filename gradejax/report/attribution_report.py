"""Attribution report for a trained classifier: heat-map PNGs and an offline HTML page.

  python -m gradejax.visualize --workdir DIR --methods saliency,grad_cam,occlusion \
      [--images 8 | --images id1,id2] [--layer level0] [--precision highest]

Writes ``DIR/report/overlays/*.png`` (one per image x method), ``DIR/report/grid_*.png`` (per
image, and all images x methods) and ``DIR/report/index.html`` (self-contained: verdict from
``DIR/eval/verdict.json``, per-image maps, sanity checks, deletion/insertion AUCs, localisation
against the demo's planted cue when its truth is available, a link to ``DIR/featurevis``).

``main`` only loads (``runs.load_trained``, ``dataset.load_arrays``); ``make_report`` does the
work for any (module, variables) following gradejax.nets and any arrays in load_arrays' format.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import importlib
import logging
import pathlib
from typing import Any, Callable, Sequence

import jax
import numpy as np
from absl import app, flags

from gradejax import distributed, logs
from gradejax import nets
from gradejax.report import figures, document, verdict
from gradejax.attribution import class_activation, faithfulness, localisation, registry, sanity
from gradejax.attribution.occlusion_sensitivity import DEFAULT_FILL

DEFAULT_METHODS = ('saliency', 'integrated_gradients', 'grad_cam', 'occlusion')
CueMaskFn = Callable[..., np.ndarray]


@dataclasses.dataclass
class Options:
  """What to compute; defaults are the CLI's flags' defaults."""
  methods: Sequence[str] = DEFAULT_METHODS
  images: str = '8'  # a count (the first N examples) or comma-separated ids
  layer: str | None = None  # tap for Grad-CAM & co.; None: the last spatial tap
  cam_pooled: str = 'pooled'  # tap of the globally pooled features (CAM)
  precision: str = 'highest'
  seed: int = 0
  steps: int = 32  # integrated gradients
  n_samples: int = 16  # SmoothGrad
  noise_level: float = 0.15
  patch: int = 15  # occlusion
  stride: int = 15
  fill: float = DEFAULT_FILL  # occluder value in [0, 1]: mid-grey, near the mean pixel
  sanity_images: int = 2
  faithfulness_steps: int = 10
  pointing_tolerance: float = 4.0
  truth: str | None = None  # truth.csv of the demo workbook; None: look beside the data


def select(arrays: dict, spec: str) -> np.ndarray:
  """Indices into ``arrays`` for '--images': 'N' (the first N) or 'id1,id2,...'."""
  n = len(arrays['images'])
  spec = str(spec).strip()
  if spec.isdigit():
    if int(spec) < 1:
      raise ValueError('--images must be a positive count or a list of ids')
    return np.arange(min(int(spec), n))
  ids = [s.strip() for s in spec.split(',') if s.strip()]
  where = {str(v): i for i, v in enumerate(arrays['id'])}
  missing = [i for i in ids if i not in where]
  if missing:
    raise ValueError(f'--images: ids {missing} are not in the prepared data (skipped rows have '
                     f'no chip; see manifest.csv status/reason)')
  return np.array([where[i] for i in ids])


def default_layer(fn: nets.ModelFn, images: np.ndarray, min_side: int = 7) -> str:
  """The last tap (in forward order) holding a spatial map [B, h, w, C] with h, w >= min_side:
  Grad-CAM's usual choice, the deepest layer that still has a usable map (the face net's
  level2, 8x8; its 4x4 and 2x2 levels would paint a few blocks). Falls back to the last
  spatial tap."""
  shapes = nets.activation_shapes(fn, images[:1])
  spatial = [k for k in nets.tap_order(fn, images) if len(shapes[k]) == 4]
  if not spatial:
    raise ValueError('the network taps no spatial feature map; pass --layer')
  usable = [k for k in spatial if min(shapes[k][1:3]) >= min_side]
  return (usable or spatial)[-1]


def _inputs(name: str, fn: nets.ModelFn, x, opts: Options, layer: str) -> dict[str, Any]:
  """Per-method inputs and options (CAM's weights are re-derived for every fn)."""
  kw = dict(layer=layer, key=jax.random.key(opts.seed), precision=opts.precision,
            steps=opts.steps, n_samples=opts.n_samples, noise_level=opts.noise_level,
            patch=min(opts.patch, *x.shape[1:3]), stride=opts.stride, fill=opts.fill)
  if name == 'cam':
    kw['weights'] = class_activation.linear_head_weights(fn, x, opts.cam_pooled,
                                                         key=jax.random.key(opts.seed))
  if name == 'region_class':
    kw['layer'] = None  # occlusion regions: comparable across classes at any network
  return kw


def heatmap_fn(name: str, opts: Options, layer: str):
  """(fn, images, targets) -> [B, H, W] maps of method ``name`` (for sanity checks)."""
  return lambda fn, x, t: registry.heatmap(name, fn, x, t, **_inputs(name, fn, x, opts, layer))


def _read_truth(path: pathlib.Path) -> dict[str, tuple[int, tuple[float, ...]]]:
  """truth.csv -> id -> (cue 0/1, box x0 y0 x1 y1 in photo pixels)."""
  with open(path, newline='', encoding='utf-8') as f:
    rows = list(csv.DictReader(f))
  out = {}
  for n, r in enumerate(rows, start=2):
    try:
      if 'cue_box' in r:
        box = tuple(float(v) for v in r['cue_box'].split()) if r['cue_box'] else ()
      else:
        box = tuple(float(r[k]) for k in ('x0', 'y0', 'x1', 'y1') if r.get(k, '') != '')
      cue = int(float(r['cue']))
    except (KeyError, ValueError) as e:
      raise ValueError(f'{path}, line {n}: need columns id, cue and cue_box "x0 y0 x1 y1" (or '
                       f'x0, y0, x1, y1); got {sorted(r)} ({e})') from e
    out[str(r['id'])] = (cue, box)
  return out


def cue_masks(data_dir: pathlib.Path | None, ids: Sequence[str], size: int, truth: str | None,
              cue_mask_fn: CueMaskFn | None = None) -> tuple[dict[str, np.ndarray], str]:
  """id -> bool [size, size] mask of the planted cue, for the ids that have one; or a message
  saying why localisation cannot be measured."""
  if cue_mask_fn is None:
    try:
      cue_mask_fn = importlib.import_module('gradejax.data.demo_data').cue_mask_in_chip
    except (ImportError, AttributeError):
      return {}, ('Localisation not measured: gradejax.data.demo_data.cue_mask_in_chip is not '
                  'available in this installation.')
  candidates = ([pathlib.Path(truth)] if truth else
                [p / 'truth.csv' for p in (data_dir, data_dir.parent) if data_dir is not None])
  path = next((p for p in candidates if p.is_file()), None)
  if path is None:
    return {}, ('Localisation not measured: no truth.csv (the demo workbook\'s ground truth) '
                f'found at {", ".join(map(str, candidates)) or "(no data folder)"}; pass '
                f'--truth PATH for a demo run. Real workbooks have no planted cue.')
  if data_dir is None or not (data_dir / 'manifest.csv').is_file():
    return {}, f'Localisation not measured: no manifest.csv in {data_dir} (chip_affine needed).'
  from gradejax.data import manifest  # the reader of prepare's manifest.csv
  affines = {e.id: e.chip_affine for e in manifest.read(data_dir / 'manifest.csv')}
  boxes = _read_truth(path)
  masks = {}
  for i in ids:
    cue, box = boxes.get(i, (0, ()))
    if cue == 1 and len(box) == 4 and affines.get(i) is not None:
      masks[i] = np.asarray(cue_mask_fn(box, affines[i], size=size), bool)
  if not masks:
    return {}, f'Localisation not measured: none of the shown images carries the cue ({path}).'
  return masks, f'Cue regions from {path.name} mapped into the chips with manifest chip_affine.'


def _verdict_section(workdir: pathlib.Path) -> document.Section:
  # One rendering of the verdict for every page (gradejax.report.verdict).
  return verdict.section(workdir)


def make_report(workdir: str | pathlib.Path, module, variables, arrays: dict,
                data_dir: str | pathlib.Path | None = None, opts: Options = Options(),
                cue_mask_fn: CueMaskFn | None = None,
                retrain: Callable[[], Any] | None = None) -> pathlib.Path:
  """Computes the maps and checks, writes PNGs and ``WORKDIR/report/index.html`` (its path).

  ``retrain() -> params`` (same structure, trained on shuffled labels) enables the
  label-randomisation check; it is called once."""
  workdir = pathlib.Path(workdir)
  data_dir = pathlib.Path(data_dir) if data_dir is not None else None
  out_dir = workdir / 'report'
  (out_dir / 'overlays').mkdir(parents=True, exist_ok=True)
  for m in opts.methods:
    registry.get(m)  # unknown names fail before any work
  idx = select(arrays, opts.images)
  if len(idx) == 0:
    raise ValueError('no images to explain: the prepared data is empty')
  raw = np.asarray(arrays['images'])[idx]
  x = raw.astype(np.float32) / 255.0
  ids = [str(arrays['id'][i]) for i in idx]
  class_names = list(arrays.get('class_names') or [])
  fn = nets.bind(module, variables)
  outputs = np.asarray(fn(x)[0])
  targets = np.argmax(outputs, axis=1).astype(np.int32)
  name_of = lambda k: class_names[k] if k < len(class_names) else str(k)
  layer = opts.layer or default_layer(fn, x)

  maps, skipped = _all_maps(fn, x, targets, opts, layer)
  if not distributed.is_main():  # a multi-host run: process 0 has every map and writes
    return out_dir / 'index.html'

  rows, shown = [], []
  for r, i in enumerate(idx):
    title = f'#{r} pred {name_of(targets[r])}'
    row = [figures.image_panel(raw[r], title)]
    for m, h in maps.items():
      meta = registry.get(m)
      if meta.output == 'regions':
        p = figures.region_panel(raw[r], h[r], class_names or [str(k) for k in
                                                               range(outputs.shape[1])], m)
      else:
        p = figures.heat_panel(raw[r], h[r], meta.signed, m)
      figures.save_png(p, out_dir / 'overlays' / f'img{r:02d}_{m}.png')
      row.append(p)
    g = figures.grid([row])
    figures.save_png(g, out_dir / f'grid_img{r:02d}.png')
    rows.append(row)
    label = name_of(int(arrays['label'][i])) if 'label' in arrays else '?'
    shown.append(document.Figure(g, f'image #{r}: predicted {name_of(targets[r])}, '
                                    f'label {label}'))
  figures.save_png(figures.grid(rows, [f'#{r}' for r in range(len(idx))]), out_dir / 'grid_all.png')

  sections = [_verdict_section(workdir), _methods_section(opts, maps, skipped, layer)]
  sections.append(document.Section('Maps per image', [
      'Each row: the chip, then one panel per method with its colour bar. Unsigned maps: dark = '
      '0; signed maps: blue < 0 < red. Each map explains the predicted class.'],
      figures=shown))
  pixel_methods = [m for m in maps if registry.get(m).output != 'regions']
  sections.append(_sanity_section(module, variables, x, targets, pixel_methods, opts, layer,
                                  functools.lru_cache(None)(retrain) if retrain else None))
  sections.append(_faithfulness_section(fn, x, targets, maps, pixel_methods, opts,
                                        outputs.shape[1]))
  masks, note = cue_masks(data_dir, ids, x.shape[1], opts.truth, cue_mask_fn)
  sections.append(_localisation_section(maps, pixel_methods, ids, masks, note, opts))
  fv = workdir / 'featurevis' / 'index.html'
  sections.append(document.Section(
      'Feature visualisation',
      [] if fv.is_file() else ['No feature visualisation in this work directory yet.'],
      links=[('Open the feature visualisation report', '../featurevis/index.html')]
      if fv.is_file() else []))
  return document.write(out_dir / 'index.html', f'Attribution report: {workdir.name}', sections)


def _all_maps(fn, x, targets, opts: Options, layer: str) -> tuple[dict, dict]:
  """Each method's maps [B, H, W] (method -> array) and the methods skipped (-> why).

  In a multi-host run (gradejax.distributed) each process computes its contiguous share of
  the images and the shares are gathered in order, so the maps are a single process's. Methods
  drawing random numbers (``needs_key``: SmoothGrad) draw them for the whole batch's shape, so
  a share would get other noise: every process computes those on all images instead."""
  maps, skipped = {}, {}
  share = distributed.split(len(x))
  for m in opts.methods:
    # One process, fewer images than processes (a share would be empty), or a key: no split.
    whole = len(x) < jax.process_count() or jax.process_count() == 1 or registry.get(m).needs_key
    xs, ts = (x, targets) if whole else (x[share], targets[share])
    try:
      h = np.asarray(registry.heatmap(m, fn, xs, ts, **_inputs(m, fn, xs, opts, layer)))
      maps[m] = h if whole else distributed.gather_rows(h, len(x))
    except ValueError as e:  # raised alike in every process (it depends on the net, not on x)
      skipped[m] = str(e)
      logging.warning('method %s skipped: %s', m, e)
  return maps, skipped


def _methods_section(opts, maps, skipped, layer) -> document.Section:
  rows = []
  for m in opts.methods:
    meta = registry.get(m)
    status = 'computed' if m in maps else f'skipped: {skipped.get(m, "")}'
    rows.append((m, meta.summary, layer if meta.needs_layer else '', status))
  return document.Section('Methods', [
      f'Matmul/convolution precision: {opts.precision}. Integrated gradients: {opts.steps} '
      f'steps from black; SmoothGrad: {opts.n_samples} samples at noise {opts.noise_level}; '
      f'occlusion: {opts.patch} px patches, stride {opts.stride}, fill {opts.fill:g}.'],
      [document.Table(('method', 'what', 'layer', 'status'), rows)])


def _sanity_section(module, variables, x, targets, methods, opts, layer, retrain=None
                    ) -> document.Section:
  paras = [
      'Cascading model-parameter randomisation (Adebayo et al. 2018): param subtrees are '
      're-initialised (seed %d) from the output side down, cumulatively, and each method\'s '
      'maps on %d images are compared with the trained model\'s. A method whose |map| rank '
      'correlation stays above %.1f after full randomisation is flagged: it does not depend on '
      'what the model learned.' % (opts.seed + 1, min(opts.sanity_images, len(x)),
                                   sanity.DEFAULT_THRESHOLD),
      ('Label randomisation: the head is re-trained on shuffled labels (same config and seed, '
       'cached features) and each method\'s maps are compared with the trained model\'s '
       '(rows "labels shuffled"); a method that does not change is flagged.' if retrain else
       'Label randomisation needs a model re-trained on shuffled labels '
       '(attribution.sanity.label_randomization with a re-training callable); not run here.')]
  if not methods:
    return document.Section('Sanity checks', paras + ['No pixel-map method was computed.'])
  xs, ts = x[:opts.sanity_images], targets[:opts.sanity_images]
  params = variables['params']
  try:
    fresh = module.init(jax.random.key(opts.seed + 1), xs[:1])['params']
  except Exception as e:  # noqa: BLE001 - any init failure only removes this section
    return document.Section('Sanity checks', paras + [f'Not run: module.init failed ({e}).'])
  others = {k: v for k, v in variables.items() if k != 'params'}
  bind = lambda p: nets.bind(module, {**others, 'params': p})
  rows = []
  for m in methods:
    try:
      stages = sanity.cascading_randomization(bind, params, fresh, xs, ts,
                                              heatmap_fn(m, opts, layer))
    except ValueError as e:
      rows.append((m, f'failed: {e}', float('nan'), float('nan'), float('nan'), False))
      continue
    for s in stages:
      rows.append((m, f'+ {s["randomized"]}', s['spearman'], s['spearman_abs'], s['ssim'],
                   s is stages[-1] and sanity.flagged(stages)))
    if retrain is not None:
      s = sanity.label_randomization(bind, params, retrain, xs, ts, heatmap_fn(m, opts, layer))
      rows.append((m, 'labels shuffled', s['spearman'], s['spearman_abs'], s['ssim'],
                   sanity.flagged(s)))
  return document.Section('Sanity checks', paras, [document.Table(
      ('method', 'randomised so far', 'Spearman', 'Spearman |map|', 'SSIM', 'flagged'), rows)])


def _faithfulness_section(fn, x, targets, maps, methods, opts, classes) -> document.Section:
  score = 'softmax' if classes > 1 else 'logit'
  rows = []
  for m in methods:
    aucs = []
    for mode in ('deletion', 'insertion'):
      c = faithfulness.curve(fn, x, targets, maps[m], mode=mode, steps=opts.faithfulness_steps,
                             score=score, precision=opts.precision)
      aucs.append(float(np.mean(faithfulness.auc(c))))
    rows.append((m, aucs[0], aucs[1], aucs[1] - aucs[0]))
  return document.Section('Faithfulness', [
      f'Deletion: the most-attributed pixels are set to black, {opts.faithfulness_steps} steps; '
      f'insertion: they are restored onto a blurred copy. Area under the {score} score of the '
      f'predicted class, mean over images: lower deletion and higher insertion AUC = more '
      f'faithful.'], [document.Table(('method', 'deletion AUC', 'insertion AUC',
                                    'insertion - deletion'), rows)])


def _localisation_section(maps, methods, ids, masks, note, opts) -> document.Section:
  if not masks:
    return document.Section('Localisation of the planted cue', [note])
  pick = [k for k, i in enumerate(ids) if i in masks]
  m_arr = np.stack([masks[ids[k]] for k in pick])
  area = float(m_arr.mean())
  rows = []
  for m in methods:
    h = maps[m][pick]
    mass = localisation.mass_inside(h, m_arr)
    hit = localisation.pointing_game(h, m_arr, opts.pointing_tolerance)
    rows.append((m, float(np.nanmean(mass)), float(hit.mean()), len(pick)))
  return document.Section('Localisation of the planted cue', [
      note, f'Mass inside: share of positive attribution inside the cue region (a uniform map '
      f'scores the region\'s area share, {area:.3f}). Pointing game: share of images whose '
      f'maximum lies within {opts.pointing_tolerance:g} px of the region.'],
      [document.Table(('method', 'mass inside', 'pointing game', 'images'), rows)])


def main(argv: Sequence[str]) -> None:
  del argv
  logs.quiet_libraries()
  multi_host = distributed.initialize_from_flags()  # before any JAX work
  from gradejax.data import dataset  # the loading layer; everything else is make_report
  from gradejax.training import runs, train
  f = flags.FLAGS
  module, variables, config = runs.load_trained(f.workdir)
  data_dir = pathlib.Path(config.data_dir)
  arrays = dataset.load_arrays(data_dir)
  opts = Options(methods=tuple(m.strip() for m in f.methods.split(',') if m.strip()),
                 images=f.images, layer=f.layer, precision=f.precision, seed=f.seed,
                 steps=f.steps, n_samples=f.n_samples, patch=f.patch, stride=f.stride,
                 fill=f.fill,
                 sanity_images=f.sanity_images, truth=f.truth, cam_pooled=f.cam_pooled)
  if multi_host and f.label_randomization:
    # Re-training saves orbax checkpoints, a collective of every process, while only process 0
    # runs the checks: it would wait for the others forever.
    logging.warning('--label_randomization is not run in a multi-host run; run it in one process')
  path = make_report(f.workdir, module, variables, arrays, data_dir, opts,
                     retrain=(lambda: train.retrain_on_shuffled_labels(f.workdir, config, f.seed))
                     if f.label_randomization and not multi_host else None)
  if distributed.is_main():
    print(f'wrote {path} (a local file with students\' photos: do not share it)')


def _define_flags() -> None:
  distributed.define_flags()
  flags.DEFINE_string('workdir', None, 'work directory of a training run', required=True)
  flags.DEFINE_string('methods', ','.join(DEFAULT_METHODS),
                      f'comma-separated, from: {", ".join(registry.METHODS)}')
  flags.DEFINE_string('images', '8', 'how many images (the first N) or comma-separated ids')
  flags.DEFINE_string('layer', None, 'tap for Grad-CAM-like methods (default: last spatial tap)')
  flags.DEFINE_string('cam_pooled', 'pooled', 'tap of the pooled features, for CAM')
  flags.DEFINE_enum('precision', 'highest', ['highest', 'high', 'default', 'float32',
                                             'tensorfloat32', 'bfloat16'],
                    'jax.default_matmul_precision for every map')
  flags.DEFINE_integer('seed', 0, 'PRNG seed (SmoothGrad noise, sanity re-initialisation)')
  flags.DEFINE_integer('steps', 32, 'integrated-gradients steps')
  flags.DEFINE_integer('n_samples', 16, 'SmoothGrad samples')
  flags.DEFINE_integer('patch', 15, 'occlusion patch size (px)')
  flags.DEFINE_integer('stride', 15, 'occlusion stride (px)')
  flags.DEFINE_float('fill', DEFAULT_FILL, 'occluder value in [0, 1] (0.5: mid-grey; 0: black, as '
                     'captum\'s default baseline, reads as a dark object to a face network)')
  flags.DEFINE_integer('sanity_images', 2, 'images used by the randomisation checks')
  flags.DEFINE_boolean('label_randomization', True, 're-train the head on shuffled labels for '
                       'the label-randomisation sanity check')
  flags.DEFINE_string('truth', None, 'truth.csv of a demo workbook (default: beside the data)')


def command() -> None:
  """The ``gradejax.visualize`` command: defines its flags, parses argv, runs :func:`main`."""
  _define_flags()
  app.run(main)
