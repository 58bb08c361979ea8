"""Attribution report for a trained classifier: heat-map PNGs and an offline HTML page.

  python -m gradejax.visualize --workdir DIR --methods saliency,grad_cam,occlusion \
      [--images 8 | --images id1,id2] [--layer level0] [--precision highest]

Writes ``DIR/report/overlays/*.png`` (one per image x method), ``DIR/report/grid_*.png`` (per
image, and all images x methods) and ``DIR/report/index.html`` (self-contained: verdict from
``DIR/eval/verdict.json``, per-image maps, sanity checks, deletion/insertion AUCs, localisation
against the demo's planted cue when its truth is available -- on the shown images and, with
bootstrap CIs, on all cue-bearing images of the held-out fold --, ROAD, a causal check (remove
each map's top square vs random squares), the methods ranked, a link to ``DIR/featurevis``).

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
from absl import app

from gradejax import distributed, logs
from gradejax import options as optlib
from gradejax import nets
from gradejax.report import document, verdict
from gradejax.report import panels as figures  # the PIL half of the old figures.py
from gradejax.attribution import class_activation, faithfulness, localisation, registry, sanity
from gradejax.attribution.occlusion_sensitivity import DEFAULT_FILL
from gradejax.options import option

DEFAULT_METHODS = ('saliency', 'integrated_gradients', 'grad_cam', 'occlusion')
CueMaskFn = Callable[..., np.ndarray]


PRECISIONS = ('highest', 'high', 'default', 'float32', 'tensorfloat32', 'bfloat16')


@dataclasses.dataclass
class Options:
  """What the report computes: the source of the ``visualize`` flags (gradejax.options)."""
  methods: Sequence[str] = option(DEFAULT_METHODS, f'comma-separated, from: '
                                  f'{", ".join(registry.METHODS)}')
  images: str = option('8', 'how many images (the first N) or comma-separated ids')
  layer: str | None = option(None, 'tap for Grad-CAM-like methods (default: the last spatial '
                             'tap with a map of at least 7 px)')
  cam_pooled: str = option('pooled', 'tap of the pooled features, for CAM')
  precision: str = option('highest', 'jax.default_matmul_precision for every map',
                          choices=PRECISIONS)
  seed: int = option(0, 'PRNG seed (SmoothGrad noise, RISE masks, sanity re-initialisation)')
  steps: int = option(32, 'integrated-gradients steps')
  n_samples: int = option(16, 'SmoothGrad samples')
  noise_level: float = option(0.15, 'SmoothGrad noise, as a share of the input range')
  # Occlusion: 24 px (the demo sticker is 16-19 px on a 150 px chip, read from either half,
  # so a patch must hide all of it) at stride 8 (256 positions), painted at each patch's
  # centre: pointing game 0.667 [0.521, 0.792], 8.2x the uniform mass over the demo's held-out
  # fold, against 15 / 15's (benchmarks/RESULTS.md, issue 12); 22 px / stride 4 reaches 0.750
  # at 4.3x the forwards.
  patch: int = option(24, 'occlusion patch size (px)')
  stride: int = option(8, 'occlusion stride (px)')
  fill: float = option(DEFAULT_FILL, 'occluder value in [0, 1] for --fill_mode value (0.5: '
                       'mid-grey; 0: black, captum\'s default baseline, reads as a dark object '
                       'to a face network)')
  occlusion_aggregate: str = option(
      'centre', 'how occlusion paints each patch position\'s drop onto pixels: at the pixels '
      'nearest the patch\'s centre (a cue still read while half hidden drops the score only '
      'when one patch hides all of it; the map then peaks there) or the mean over the patches '
      'covering each pixel', choices=('centre', 'mean'))
  perturbation_score: str = option(
      'logit', 'what occlusion, occlusion_multiscale and RISE explain: the predicted class\'s '
      'logit, or its contrast (that logit minus the mean of the other classes\': with two '
      'classes the logit difference, blind to changes that move every class alike)',
      choices=('logit', 'contrast'))
  multiscale_combine: str = option('mean', 'occlusion_multiscale: mean or max over the patch '
                                   'sizes of the maps scaled to max |drop| 1',
                                   choices=('mean', 'max'))
  sanity_images: int = option(2, 'images used by the randomisation checks')
  faithfulness_steps: int = option(10, 'deletion/insertion curve steps')
  pointing_tolerance: float = option(4.0, 'pointing game: px a map\'s maximum may lie outside '
                                     'the cue region')
  truth: str | None = option(None, 'truth.csv of a demo workbook (default: beside the data)')
  # Perturbation methods (occlusion, RISE, superpixels, the causal check): what a removed
  # region becomes. 'inpaint' (from its surroundings) removes a small cue without painting a
  # new object; 'value' is the constant ``fill`` (the grey occluder of earlier reports).
  fill_mode: str = option('inpaint', 'what perturbation methods put where they remove pixels: '
                          'inpainted from the surroundings, a blurred copy, or the constant '
                          '--fill', choices=('inpaint', 'blur', 'value'))
  blur_sigma: float = option(5.0, 'Gaussian sigma (px) of the blur and inpaint fills')
  rise_masks: int = option(2000, 'RISE random masks')
  rise_cells: int = option(8, 'RISE grid cells per side')
  segments: int = option(64, 'SLIC superpixels (superpixel_ablation, kernel_shap, lime)')
  shap_samples: int = option(256, 'coalitions for kernel_shap / lime')
  patches: tuple[int, ...] = option((8, 16, 32), 'occlusion_multiscale patch sizes (px)')
  xrai_base: str = option('integrated_gradients', 'attribution XRAI ranks regions by')
  # Localisation over all cue-bearing images of the held-out fold (not only the shown ones).
  localisation_set: str = option('fold', 'localisation over all cue-bearing images of the '
                                 'held-out fold, or over the shown images only',
                                 choices=('fold', 'shown'))
  valid_fold: int = option(0, 'held-out fold (the run config\'s valid_fold)', flag=False)
  localisation_methods: Sequence[str] | None = option(
      None, 'methods measured on the held-out fold (default: --methods)')
  batch: int = option(8, 'images per call for the held-out-fold maps (bounds memory)')
  bootstrap: int = option(1000, 'bootstrap resamples for the localisation CIs')
  causal_size: int = option(16, 'side (px) of the square the causal check removes')
  causal_random: int = option(8, 'random squares per image in the causal check')
  road_fractions: tuple[float, ...] = option((0.01, 0.02, 0.05, 0.1, 0.2),
                                             'ROAD: shares of pixels removed')


@dataclasses.dataclass
class Command(Options):
  """The ``visualize`` command: :class:`Options` plus the run and the retraining switch."""
  workdir: str | None = option(None, 'work directory of a training run', required=True)
  label_randomization: bool = option(True, 're-train the head on shuffled labels for the '
                                     'label-randomisation sanity check')


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
            patch=min(opts.patch, *x.shape[1:3]), stride=opts.stride, fill=opts.fill,
            fill_mode=opts.fill_mode, blur_sigma=opts.blur_sigma, n_masks=opts.rise_masks,
            cells=opts.rise_cells, n_segments=opts.segments, patches=opts.patches,
            base=opts.xrai_base, aggregate=opts.occlusion_aggregate,
            score=opts.perturbation_score, combine=opts.multiscale_combine)
  if name in ('kernel_shap', 'lime'):
    kw['n_samples'] = opts.shap_samples
  if name == 'rise':
    kw['unroll'] = False  # 40 unrolled copies of a ResNet compile for minutes on a CPU
  if name == 'cam':
    kw['weights'] = class_activation.linear_head_weights(fn, x, opts.cam_pooled,
                                                         key=jax.random.key(opts.seed))
  if name == 'region_class':
    kw['layer'] = None  # occlusion regions: comparable across classes at any network
  return registry.options_for(name, kw)  # the registry rejects options a method lacks


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
  raw = np.asarray(arrays['images'][idx])  # only these (load_arrays' lazy images too)
  x = raw.astype(np.float32) / 255.0
  ids = [str(arrays['id'][i]) for i in idx]
  class_names = list(arrays.get('class_names') or [])
  fn = nets.bind(module, variables)
  outputs = np.asarray(fn(x)[0])
  targets = np.argmax(outputs, axis=1).astype(np.int32)
  name_of = lambda k: class_names[k] if k < len(class_names) else str(k)
  layer = opts.layer or default_layer(fn, x)

  maps, skipped = _all_maps(fn, x, targets, opts, layer)
  # A multi-host run: every process goes on (the checks below split their images over the
  # processes or are collectives); process 0 alone writes.
  save_png = figures.save_png if distributed.is_main() else lambda *a, **k: None

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
      save_png(p, out_dir / 'overlays' / f'img{r:02d}_{m}.png')
      row.append(p)
    g = figures.grid([row])
    save_png(g, out_dir / f'grid_img{r:02d}.png')
    rows.append(row)
    label = name_of(int(arrays['label'][i])) if 'label' in arrays else '?'
    shown.append(document.Figure(g, f'image #{r}: predicted {name_of(targets[r])}, '
                                    f'label {label}'))
  save_png(figures.grid(rows, [f'#{r}' for r in range(len(idx))]), out_dir / 'grid_all.png')

  sections = [_verdict_section(workdir), _methods_section(opts, maps, skipped, layer)]
  sections.append(document.Section('Maps per image', [
      'Each row: the chip, then one panel per method with its colour bar. Unsigned maps: dark = '
      '0; signed maps: blue < 0 < red. Each map explains the predicted class.'],
      figures=shown))
  pixel_methods = [m for m in maps if registry.get(m).output != 'regions']
  sections.append(_sanity_section(module, variables, x, targets, pixel_methods, opts, layer,
                                  functools.lru_cache(None)(retrain) if retrain else None))
  faith = faithfulness_rows(fn, x, targets, maps, pixel_methods, opts, outputs.shape[1])
  sections.append(_faithfulness_section(faith, opts, outputs.shape[1]))
  masks, note = cue_masks(data_dir, ids, x.shape[1], opts.truth, cue_mask_fn)
  sections.append(_localisation_section(maps, pixel_methods, ids, masks, note, opts))
  loc_methods = [m for m in (opts.localisation_methods or pixel_methods)
                 if registry.get(m).output != 'regions']
  fx, fm, fnote = localisation_images(arrays, data_dir, opts, cue_mask_fn, x.shape[1], idx)
  loc_rows, causal = [], None
  if fm is not None and loc_methods:
    ft, fmaps = _fold_predictions_and_maps(fn, fx, opts, layer, loc_methods)
    loc_rows = localisation_rows(fmaps, fm, opts)
    causal = causal_rows(fn, fx, ft, fmaps, opts, fm)
  elif loc_methods:
    causal = causal_rows(fn, x, targets, {m: maps[m] for m in loc_methods if m in maps}, opts)
  sections.append(_fold_localisation_section(loc_rows, fnote, fm, opts))
  if causal is not None:
    sections.append(_causal_section(causal, opts))
  sections.append(_ranking_section(loc_rows, faith))
  fv = workdir / 'featurevis' / 'index.html'
  sections.append(document.Section(
      'Feature visualisation',
      [] if fv.is_file() else ['No feature visualisation in this work directory yet.'],
      links=[('Open the feature visualisation report', '../featurevis/index.html')]
      if fv.is_file() else []))
  if not distributed.is_main():
    return out_dir / 'index.html'
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
  painted = ('at its centre' if opts.occlusion_aggregate == 'centre'
             else 'as the mean over the patches covering each pixel')
  score = ("logit minus the other classes' mean" if opts.perturbation_score == 'contrast'
           else 'logit')
  return document.Section('Methods', [
      f'Matmul/convolution precision: {opts.precision}. Integrated gradients: {opts.steps} '
      f'steps from black; SmoothGrad: {opts.n_samples} samples at noise {opts.noise_level}; '
      f'occlusion: {opts.patch} px patches, stride {opts.stride}, each position\'s drop painted '
      f'{painted}; occlusion_multiscale: {", ".join(map(str, opts.patches))} px patches, '
      f'{opts.multiscale_combine} over the sizes; occlusion and RISE explain the predicted '
      f'class\'s {score}; perturbation methods fill what they remove with: {opts.fill_mode}'
      + (f' {opts.fill:g}' if opts.fill_mode == 'value' else f' (sigma {opts.blur_sigma:g} px)')
      + f'; RISE: {opts.rise_masks} masks, {opts.rise_cells} cells; superpixels: SLIC '
      f'{opts.segments} segments, {opts.shap_samples} KernelSHAP/LIME coalitions.'],
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


def faithfulness_rows(fn, x, targets, maps, methods, opts, classes) -> list[tuple]:
  """Per method: (name, deletion AUC, insertion AUC, insertion - deletion, ROAD MoRF AUC,
  ROAD LeRF AUC, LeRF - MoRF), means over the images."""
  score = 'softmax' if classes > 1 else 'logit'
  rows = []
  for m in methods:
    aucs = []
    for mode in ('deletion', 'insertion'):
      c = faithfulness.curve(fn, x, targets, maps[m], mode=mode, steps=opts.faithfulness_steps,
                             score=score, precision=opts.precision)
      aucs.append(float(np.mean(faithfulness.auc(c))))
    for order in ('morf', 'lerf'):
      c = faithfulness.road(fn, x, targets, maps[m], jax.random.key(opts.seed), order=order,
                            fractions=tuple(opts.road_fractions), score=score,
                            precision=opts.precision)
      aucs.append(float(np.mean(faithfulness.road_auc(c, tuple(opts.road_fractions)))))
    rows.append((m, aucs[0], aucs[1], aucs[1] - aucs[0], aucs[2], aucs[3], aucs[3] - aucs[2]))
  return rows


def _faithfulness_section(rows, opts, classes) -> document.Section:
  score = 'softmax' if classes > 1 else 'logit'
  fr = ', '.join(f'{f:g}' for f in opts.road_fractions)
  return document.Section('Faithfulness', [
      f'Deletion: the most-attributed pixels are set to black, {opts.faithfulness_steps} steps; '
      f'insertion: they are restored onto a blurred copy. Area under the {score} score of the '
      f'predicted class, mean over images: lower deletion and higher insertion AUC = more '
      f'faithful.',
      f'ROAD (Rong et al. 2022, remove and debias): the fractions {fr} of the pixels are '
      f'removed, most relevant first (MoRF; lower AUC = more faithful) or least relevant first '
      f'(LeRF; higher = more faithful), and imputed from their neighbours (noisy linear '
      f'imputation), so that the removal\'s shape does not leak the ranking to the model.'],
      [document.Table(('method', 'deletion AUC', 'insertion AUC', 'insertion - deletion',
                       'ROAD MoRF AUC', 'ROAD LeRF AUC', 'LeRF - MoRF'), rows)])


def predicted(fn, x: np.ndarray, batch: int) -> np.ndarray:
  """The predicted class per image, int32 [B], ``batch`` images per call."""
  if isinstance(fn, nets.Bound):  # params as a traced pytree: one compile
    forward = functools.partial(jax.jit(lambda f, xb: f(xb)[0]), fn)
  else:
    forward = jax.jit(lambda xb: fn(xb)[0])
  return np.concatenate([np.argmax(np.asarray(forward(x[i:i + batch])), axis=1)
                         for i in range(0, len(x), batch)]).astype(np.int32)


def fold_maps(name: str, fn, x: np.ndarray, targets: np.ndarray, opts: Options, layer: str
              ) -> np.ndarray:
  """[B, H, W] maps of method ``name``, ``opts.batch`` images per call (same options as the
  per-image maps)."""
  out = []
  for i in range(0, len(x), opts.batch):
    xb = x[i:i + opts.batch]
    out.append(np.asarray(registry.heatmap(name, fn, xb, targets[i:i + opts.batch],
                                           **_inputs(name, fn, xb, opts, layer))))
  return np.concatenate(out)


class _Floats:
  """Rows ``rows`` of uint8 images (an array or dataset.Images), as float [0, 1] when
  sliced: ``x[i:j]`` reads and converts only those rows."""

  def __init__(self, images, rows: np.ndarray):
    self._images, self._rows = images, np.asarray(rows)
    self.shape = (len(self._rows),) + tuple(images.shape[1:])
    self.dtype = np.dtype(np.float32)

  def __len__(self) -> int:
    return self.shape[0]

  def __getitem__(self, s) -> np.ndarray:
    return np.asarray(self._images[self._rows[s]]).astype(np.float32) / 255.0

  def __array__(self, dtype=None, copy=None):
    return np.asarray(self[:], dtype)


def _fold_predictions_and_maps(fn, x, opts: Options, layer: str, methods
                               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """:func:`predicted` and :func:`fold_maps` of every method over ``x`` [N, H, W, 3]; in a
  multi-host run each process takes whole batches of ``opts.batch`` (so each call sees the
  images, shapes and PRNG draws it has in one process) and reads only those images; the rows
  are gathered to every process."""
  n = len(x)
  here = distributed.batch_split(n, opts.batch)
  xs = np.asarray(x[here])
  ts = predicted(fn, xs, opts.batch) if len(xs) else np.zeros((0,), np.int32)
  targets = distributed.gather_rows(ts, n)
  maps = {}
  for m in methods:
    h = (fold_maps(m, fn, xs, ts, opts, layer) if len(xs) else
         np.zeros((0,) + tuple(x.shape[1:3]), np.float32))
    maps[m] = distributed.gather_rows(h, n)
  return targets, maps


def localisation_images(arrays: dict, data_dir, opts: Options, cue_mask_fn, size: int,
                        shown: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None, str]:
  """The images localisation is measured on and their cue masks: all cue-bearing images of
  the held-out fold (``opts.localisation_set == 'fold'``; the shown ones when the data has no
  folds) -> (images float [N, H, W, 3], masks bool [N, H, W], note); (None, None, why)."""
  use_fold = opts.localisation_set == 'fold' and 'fold' in arrays and opts.valid_fold >= 0
  pool = (np.nonzero(np.asarray(arrays['fold']) == opts.valid_fold)[0] if use_fold
          else np.asarray(shown))
  ids = [str(arrays['id'][i]) for i in pool]
  masks, note = cue_masks(data_dir, ids, size, opts.truth, cue_mask_fn)
  if not masks:
    return None, None, note
  keep = [k for k, i in enumerate(ids) if i in masks]
  x = _Floats(arrays['images'], pool[keep])  # read when sliced: a process reads its share
  x = x if not isinstance(arrays['images'], np.ndarray) else np.asarray(x)  # in memory: as is
  where = (f'all {len(keep)} cue-bearing images of the held-out fold {opts.valid_fold} '
           f'({len(pool)} images in the fold)' if use_fold else
           f'the {len(keep)} cue-bearing images among the shown ones')
  return x, np.stack([masks[ids[k]] for k in keep]), f'{note} Measured on {where}.'


def localisation_rows(maps: dict[str, np.ndarray], masks: np.ndarray, opts: Options
                      ) -> list[dict]:
  """Per method: mean and bootstrap CI over images of mass inside, pointing game and
  relevance-rank accuracy, best first (pointing game, then mass inside)."""
  area = float(masks.mean())
  rows = []
  for k, (m, h) in enumerate(maps.items()):
    ci = lambda v, j: localisation.bootstrap_ci(v, opts.bootstrap, seed=opts.seed + j)
    r = dict(method=m, images=len(h), area=area,
             mass=ci(localisation.mass_inside(h, masks), 0),
             pointing=ci(localisation.pointing_game(h, masks, opts.pointing_tolerance), 1),
             rank=ci(localisation.relevance_rank_accuracy(h, masks), 2))
    r['meets'] = r['pointing'][0] >= 0.8 and r['mass'][0] >= 10 * area
    rows.append(r)
  return sorted(rows, key=lambda r: (-np.nan_to_num(r['pointing'][0], nan=-1),
                                     -np.nan_to_num(r['mass'][0], nan=-1)))


def _top_square(h: np.ndarray, k: int) -> tuple[int, int]:
  """Top-left corner of the k x k window with the largest summed map value."""
  c = np.pad(np.cumsum(np.cumsum(np.asarray(h, np.float64), 0), 1), ((1, 0), (1, 0)))
  sums = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
  return np.unravel_index(np.argmax(sums), sums.shape)


def causal_rows(fn, x: np.ndarray, targets: np.ndarray, maps: dict[str, np.ndarray],
                opts: Options, cue: np.ndarray | None = None) -> list[tuple]:
  """The causal check: per method, the drop of the predicted class's score (logit) when the
  map's top ``causal_size`` square is removed (``opts.fill_mode``), beside the mean drop over
  ``causal_random`` random squares of the same size, each with a bootstrap CI over images;
  with ``cue`` masks, a first row removes the cue itself (dilated by 2 px)."""
  b, h, w = x.shape[:3]
  k = min(opts.causal_size, h, w)
  rng = np.random.default_rng(opts.seed)
  corners = rng.integers(0, [h - k + 1, w - k + 1], size=(opts.causal_random, b, 2))
  square = lambda y0, x0: np.pad(np.ones((k, k), np.float32), ((y0, h - k - y0), (x0, w - k - x0)))
  rand = np.stack([[square(*corners[r, i]) for i in range(b)] for r in range(opts.causal_random)])

  here = distributed.batch_split(b, opts.batch)  # this process's whole batches

  def drops(removed):  # removed [R, B, H, W] -> drop per image, mean over R: [B]
    return distributed.gather_rows(np.concatenate([np.zeros((0,), np.float32)] + [
        np.asarray(faithfulness.removal_drop(
            fn, x[i:i + opts.batch], targets[i:i + opts.batch], removed[:, i:i + opts.batch],
            fill=opts.fill, fill_mode=opts.fill_mode, blur_sigma=opts.blur_sigma,
            precision=opts.precision)).mean(axis=0)
        for i in range(here.start, here.stop, opts.batch)]), b)

  ci = lambda v: localisation.bootstrap_ci(v, opts.bootstrap, seed=opts.seed)
  random_drop = drops(rand)
  rows = []
  if cue is not None:
    import scipy.ndimage
    grown = np.stack([scipy.ndimage.binary_dilation(c, iterations=2) for c in cue])
    rows.append(('(the planted cue itself)', ci(drops(grown[None].astype(np.float32))),
                 ci(random_drop), int(round(grown.sum(axis=(1, 2)).mean()))))
  for m, hm in maps.items():
    tops = np.stack([square(*_top_square(hm[i], k)) for i in range(b)])
    rows.append((m, ci(drops(tops[None])), ci(random_drop), k * k))
  return rows


def _fmt_ci(c) -> str:
  return f'{c[0]:.3f} [{c[1]:.3f}, {c[2]:.3f}]'


def _fold_localisation_section(rows, note, masks, opts) -> document.Section:
  title = 'Localisation over the held-out fold'
  if not rows:
    return document.Section(title, [note if masks is None else
                                    'No pixel-map method to measure.'])
  area = rows[0]['area']
  table = [(r['method'], r['images'], _fmt_ci(r['mass']), f'{r["mass"][0] / area:.1f}x',
            _fmt_ci(r['pointing']), _fmt_ci(r['rank']), 'yes' if r['meets'] else 'no')
           for r in rows]
  return document.Section(title, [
      note, f'Mean over images with a 95% percentile bootstrap CI ({opts.bootstrap} resamples '
      f'of the images). Mass inside: share of positive attribution inside the cue region (a '
      f'uniform map scores its area share, {area:.4f}; "x uniform" divides by it). Pointing '
      f'game: the map\'s maximum within {opts.pointing_tolerance:g} px of the region. Rank '
      f'accuracy: share of the map\'s top-|cue| pixels inside the cue. Target: pointing game '
      f'>= 0.8 and mass inside >= 10x uniform. Best first.'],
      [document.Table(('method', 'images', 'mass inside [95% CI]', 'x uniform',
                       'pointing game [95% CI]', 'rank accuracy [95% CI]', 'meets target'),
                      table)])


def _causal_section(rows, opts) -> document.Section:
  table = [(m, _fmt_ci(top), _fmt_ci(rand), top[0] - rand[0], area)
           for m, top, rand, area in rows]
  return document.Section('Causal check: removing what the map points at', [
      f'For each map, the {opts.causal_size} x {opts.causal_size} px square with the most '
      f'attribution is removed ({opts.fill_mode} fill) and the drop of the predicted class\'s '
      f'logit is read, beside the mean drop over {opts.causal_random} random squares of the '
      f'same size per image (95% bootstrap CI over images). A map that points at what the '
      f'network uses drops the score far more than a random region does.'],
      [document.Table(('region removed', 'score drop [95% CI]',
                       'random region drop [95% CI]', 'difference', 'pixels'), table)])


def _ranking_section(loc_rows, faith) -> document.Section:
  if loc_rows:
    best = loc_rows[0]
    text = [f'Ranked by measured localisation of the planted cue (pointing game, then mass '
            f'inside; table above). Best: {best["method"]}, pointing game '
            f'{_fmt_ci(best["pointing"])}, mass inside {_fmt_ci(best["mass"])} '
            f'({best["mass"][0] / best["area"]:.1f}x uniform).']
    order = [r['method'] for r in loc_rows]
  else:
    ranked = sorted(faith, key=lambda r: -(r[3] + r[6]))
    order = [r[0] for r in ranked]
    text = ['No ground truth for localisation: ranked by faithfulness (insertion - deletion '
            'plus ROAD LeRF - MoRF, higher first).'] + (
                [f'Best: {order[0]}.'] if order else [])
  return document.Section('Methods ranked', text + [
      'Order: ' + ', '.join(f'{i + 1}. {m}' for i, m in enumerate(order)) + '.'] if order
      else text)


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
  distributed.initialize_from_flags()  # before any JAX work
  from gradejax.data import dataset  # the loading layer; everything else is make_report
  from gradejax.training import runs, train
  f = optlib.from_flags(Command)
  module, variables, config = runs.load_trained(f.workdir)
  data_dir = pathlib.Path(config.data_dir)
  # Images are decoded when used: the shown ones, and each process's share of the held-out
  # fold (a multi-host run reads no other image).
  arrays = dataset.load_arrays(data_dir, images='lazy')
  opts = optlib.narrow(Options, f, valid_fold=int(config.get('valid_fold', 0)))
  # Every process calls retrain (a multi-host run re-trains once, in process 0's child, and
  # every process reads the result: train.retrain_on_shuffled_labels).
  path = make_report(f.workdir, module, variables, arrays, data_dir, opts,
                     retrain=(lambda: train.retrain_on_shuffled_labels(f.workdir, config, f.seed))
                     if f.label_randomization else None)
  if distributed.is_main():
    print(f'wrote {path} (a local file with students\' photos: do not share it)')


def command() -> None:
  """The ``gradejax.visualize`` command: defines its flags, parses argv, runs :func:`main`."""
  distributed.define_flags()
  optlib.define_flags(Command)
  app.run(main)
