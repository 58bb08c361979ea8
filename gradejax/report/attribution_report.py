"""The attribution report: a battery :class:`~gradejax.attribution.battery.Result` rendered as
heat-map PNGs and an offline HTML page. Renders only: the maps and checks are computed by
gradejax.attribution.battery, the command is gradejax.visualize.

Writes ``DIR/report/overlays/*.png`` (one per image x method), ``DIR/report/grid_*.png`` (per
image, and all images x methods) and ``DIR/report/index.html`` (self-contained: verdict from
``DIR/eval/verdict.json``, what the network relies on (strategies, concepts, the sentence to
quote; ``DIR/report/relies/*.png``), per-image maps, sanity checks, deletion/insertion AUCs,
localisation against the demo's planted cue when its truth is available -- on the shown images
and, with bootstrap CIs, on all cue-bearing images of the held-out fold --, ROAD, a causal check
(remove each map's top square vs random squares), the methods ranked, a link to ``DIR/featurevis``).
"""
from __future__ import annotations

import math
import pathlib

from gradejax import distributed, progress
from gradejax.attribution import registry, sanity
from gradejax.attribution.battery import result as R
from gradejax.report import document, relies_section, verdict
from gradejax.report import panels as figures  # the PIL panels (charts are report/charts.py)


def write(workdir: str | pathlib.Path, res: R.Result) -> pathlib.Path:
  """Writes the PNGs and ``WORKDIR/report/index.html`` of ``res``; returns the page's path.
  In a multi-host run only process 0 writes (every process may call this)."""
  workdir = pathlib.Path(workdir)
  out_dir = workdir / 'report'
  main = distributed.is_main()
  if main:
    (out_dir / 'overlays').mkdir(parents=True, exist_ok=True)
    (out_dir / 'relies').mkdir(exist_ok=True)
  save_png = figures.save_png if main else lambda *a, **k: None
  s, opts = res.shown, res.options
  name_of = lambda k: s.class_names[k] if k < len(s.class_names) else str(k)
  rows, shown = [], []
  with progress.task('report: figures', len(s.ids), unit='images') as p:
    for r in range(len(s.ids)):
      title = f'#{r} pred {name_of(s.targets[r])}'
      row = [figures.image_panel(s.raw[r], title)]
      for m, h in s.maps.items():
        meta = registry.get(m)
        if meta.output == 'regions':
          panel = figures.region_panel(s.raw[r], h[r], s.class_names or
                                       [str(k) for k in range(s.classes)], m)
        else:
          panel = figures.heat_panel(s.raw[r], h[r], meta.signed, m)
        save_png(panel, out_dir / 'overlays' / f'img{r:02d}_{m}.png')
        row.append(panel)
      g = figures.grid([row])
      save_png(g, out_dir / f'grid_img{r:02d}.png')
      rows.append(row)
      shown.append(document.Figure(g, f'image #{r}: predicted {name_of(s.targets[r])}, '
                                      f'label {s.labels[r]}'))
      p.update()
  save_png(figures.grid(rows, [f'#{r}' for r in range(len(s.ids))]), out_dir / 'grid_all.png')

  sections = [verdict.section(workdir), relies_section.section(res.relies, out_dir, save_png),
              _methods_section(opts, s.maps, s.skipped, s.layer),
              document.Section('Maps per image', [
                  'Each row: the chip, then one panel per method with its colour bar. Unsigned '
                  'maps: dark = 0; signed maps: blue < 0 < red. Each map explains the predicted '
                  'class.'], figures=shown),
              _sanity_section(res.sanity), _faithfulness_section(res.faithfulness, opts,
                                                                 s.classes),
              _localisation_section(res, opts),
              _fold_localisation_section(res.fold_localisation, res.fold_note,
                                         res.fold_measured, opts)]
  if res.causal is not None:
    sections.append(_causal_section(res.causal, opts))
  sections.append(_ranking_section(res))
  fv = workdir / 'featurevis' / 'index.html'
  sections.append(document.Section(
      'Feature visualisation',
      [] if fv.is_file() else ['No feature visualisation in this work directory yet.'],
      links=[('Open the feature visualisation report', '../featurevis/index.html')]
      if fv.is_file() else []))
  if not main:
    return out_dir / 'index.html'
  return document.write(out_dir / 'index.html', f'Attribution report: {workdir.name}', sections)


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


def _sanity_section(san: R.Sanity) -> document.Section:
  paras = [
      'Cascading model-parameter randomisation (Adebayo et al. 2018): param subtrees are '
      're-initialised (seed %d) from the output side down, cumulatively, and each method\'s '
      'maps on %d images are compared with the trained model\'s. A method whose |map| rank '
      'correlation stays above %.1f after full randomisation is flagged: it does not depend on '
      'what the model learned.' % (san.seed, san.images, sanity.DEFAULT_THRESHOLD),
      ('Label randomisation: the head is re-trained on shuffled labels (same config and seed, '
       'cached features) and each method\'s maps are compared with the trained model\'s '
       '(rows "labels shuffled"); a method that does not change is flagged.'
       if san.label_randomisation else
       'Label randomisation needs a model re-trained on shuffled labels '
       '(attribution.sanity.label_randomization with a re-training callable); not run here.')]
  if san.not_run:
    return document.Section('Sanity checks', paras + [san.not_run])
  return document.Section('Sanity checks', paras, [document.Table(
      ('method', 'randomised so far', 'Spearman', 'Spearman |map|', 'SSIM', 'flagged'),
      [(r.method, r.stage, r.spearman, r.spearman_abs, r.ssim, r.flagged) for r in san.rows])])


def _faithfulness_section(rows: list[R.FaithfulnessRow], opts, classes) -> document.Section:
  score = 'softmax' if classes > 1 else 'logit'
  fr = ', '.join(f'{f:g}' for f in opts.road_fractions)
  table = [(r.method, r.deletion, r.insertion, r.insertion_minus_deletion, r.road_morf,
            r.road_lerf, r.lerf_minus_morf) for r in rows]
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
                       'ROAD MoRF AUC', 'ROAD LeRF AUC', 'LeRF - MoRF'), table)])


def _fmt_ci(c) -> str:
  return f'{c[0]:.3f} [{c[1]:.3f}, {c[2]:.3f}]'


def _localisation_section(res: R.Result, opts) -> document.Section:
  if math.isnan(res.shown_area):  # no shown image carries the cue
    return document.Section('Localisation of the planted cue', [res.shown_note])
  return document.Section('Localisation of the planted cue', [
      res.shown_note, f'Mass inside: share of positive attribution inside the cue region (a '
      f'uniform map scores the region\'s area share, {res.shown_area:.3f}). Pointing game: share '
      f'of images whose maximum lies within {opts.pointing_tolerance:g} px of the region.'],
      [document.Table(('method', 'mass inside', 'pointing game', 'images'),
                      [(r.method, r.mass, r.pointing, r.images)
                       for r in res.shown_localisation])])


def _fold_localisation_section(rows: list[R.FoldLocalisationRow], note: str, measured: bool,
                               opts) -> document.Section:
  title = 'Localisation over the held-out fold'
  if not rows:
    return document.Section(title, [note if not measured else 'No pixel-map method to measure.'])
  area = rows[0].area
  table = [(r.method, r.images, _fmt_ci(r.mass), f'{r.mass[0] / area:.1f}x',
            _fmt_ci(r.pointing), _fmt_ci(r.rank), 'yes' if r.meets else 'no') for r in rows]
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


def _causal_section(rows: list[R.CausalRow], opts) -> document.Section:
  table = [(r.region, _fmt_ci(r.drop), _fmt_ci(r.random_drop), r.drop[0] - r.random_drop[0],
            r.pixels) for r in rows]
  return document.Section('Causal check: removing what the map points at', [
      f'For each map, the {opts.causal_size} x {opts.causal_size} px square with the most '
      f'attribution is removed ({opts.fill_mode} fill) and the drop of the predicted class\'s '
      f'logit is read, beside the mean drop over {opts.causal_random} random squares of the '
      f'same size per image (95% bootstrap CI over images). A map that points at what the '
      f'network uses drops the score far more than a random region does.'],
      [document.Table(('region removed', 'score drop [95% CI]',
                       'random region drop [95% CI]', 'difference', 'pixels'), table)])


def _ranking_section(res: R.Result) -> document.Section:
  order = res.ranking
  if res.ranked_by == 'localisation':
    best = res.fold_localisation[0]
    text = [f'Ranked by measured localisation of the planted cue (pointing game, then mass '
            f'inside; table above). Best: {best.method}, pointing game '
            f'{_fmt_ci(best.pointing)}, mass inside {_fmt_ci(best.mass)} '
            f'({best.mass[0] / best.area:.1f}x uniform).']
  else:
    text = ['No ground truth for localisation: ranked by faithfulness (insertion - deletion '
            'plus ROAD LeRF - MoRF, higher first).'] + ([f'Best: {order[0]}.'] if order else [])
  return document.Section('Methods ranked', text + [
      'Order: ' + ', '.join(f'{i + 1}. {m}' for i, m in enumerate(order)) + '.'] if order
      else text)
