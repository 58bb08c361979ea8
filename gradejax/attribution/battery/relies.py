"""The battery's "What the network relies on": SpRAy strategies of one faithful method's maps
over the held-out fold (gradejax.attribution.spray), each strategy's causal check, TCAV of the
user's concept folders (gradejax.attribution.tcav) and the sentence to quote
(gradejax.attribution.relies). Needs no ground truth; with it, each strategy's purity (the
share of its members carrying the planted cue) and whether its mean map's peak lies in the
members' cue regions)."""
from __future__ import annotations

import pathlib

import jax
import numpy as np

from gradejax import errors, nets
from gradejax.attribution import localisation, registry, relies as relies_lib, spray, tcav
from gradejax.attribution.battery import maps as maps_lib, result as R, truth
from gradejax.attribution.battery.config import Config


def check(cfg: Config) -> None:
  """Fails before any work on a bad ``--relies_method`` or ``--concepts`` folder."""
  if registry.get(cfg.relies.method).output == 'regions':
    raise errors.OptionError(f'--relies_method {cfg.relies.method}: SpRAy needs a pixel map method '
                     f'(e.g. occlusion), not a region classifier')
  if cfg.relies.concepts and not pathlib.Path(cfg.relies.concepts).is_dir():
    raise errors.OptionError(f'--concepts {cfg.relies.concepts}: no such folder (expected '
                     f'DIR/<concept>/*.png and DIR/random/*.png; demo_data --concepts DIR '
                     f'writes one)')
  if cfg.relies.concepts:
    counts = tcav.count_concept_folders(cfg.relies.concepts)
    sizes = [n for name, n in counts.items() if name != 'random' and n]
    if sizes and counts.get('random', 0) < tcav.random_needed(min(sizes)):
      raise errors.OptionError(
          f'--concepts {cfg.relies.concepts}: random/ holds {counts.get("random", 0)} images; '
          f'TCAV splits it into >= {tcav.MIN_RANDOM_CONCEPTS} random concepts of '
          f'{min(sizes)} images (the smallest concept folder) and a counterexample pool, so it '
          f'needs >= {tcav.random_needed(min(sizes))} (demo_data --concepts writes 11x the '
          f'concept images)')


def fold_rows(arrays: dict, valid_fold: int) -> np.ndarray | None:
  """Rows of the held-out fold in ``arrays`` (None when the data has no folds)."""
  if 'fold' not in arrays or valid_fold < 0:
    return None
  return np.nonzero(np.asarray(arrays['fold']) == valid_fold)[0]


def fold_maps(fn, arrays: dict, rows: np.ndarray, cfg: Config, inputs: maps_lib.Inputs,
              known: dict[int, tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
  """Predicted classes int32 [N] and ``cfg.relies.method``'s maps [N, H, W] of ``rows``;
  ``known``: row -> (predicted, map) already computed (the localisation's cue-bearing images),
  reused; only the other rows are computed."""
  rest = np.array([r for r in rows if int(r) not in known], np.int64)
  new_t, new_m = {}, {}
  if len(rest):
    x = truth.Floats(arrays['images'], rest)
    t, m = maps_lib.fold_predictions_and_maps(fn, x, cfg, inputs, [cfg.relies.method])
    new_t = {int(r): int(v) for r, v in zip(rest, t)}
    new_m = {int(r): h for r, h in zip(rest, m[cfg.relies.method])}
  targets = np.array([known[int(r)][0] if int(r) in known else new_t[int(r)] for r in rows],
                     np.int32)
  maps = np.stack([known[int(r)][1] if int(r) in known else new_m[int(r)] for r in rows])
  return targets, maps


def _concepts(fn, x, targets: np.ndarray, class_names: list[str], cfg: Config,
              layer: str) -> list[tuple[tcav.ConceptTest, R.ConceptRow]]:
  """TCAV of every concept folder for every predicted class (Holm within a class): one set of
  CAVs (concepts and random concepts, :func:`gradejax.attribution.tcav.tcav_classes`) scored
  on each class's images."""
  c = cfg.relies
  folders = tcav.read_concept_folders(c.concepts, size=x.shape[1])
  random = folders.pop('random')
  if not folders:
    raise errors.OptionError(f'{c.concepts}: no concept folder beside random/ (expected '
                     f'{c.concepts}/<concept>/*.png)')
  classes = {int(k): np.asarray(x[np.nonzero(targets == k)[0][:c.class_images]])
             for k in np.unique(targets)}
  found = tcav.run_tcav_classes(fn, folders, random, classes, layer=layer,
                                key=jax.random.key(c.seed), runs=c.runs, score=c.score,
                                precision=cfg.precision)
  return [(t, R.ConceptRow(t.concept, class_names[k], t.score, t.p, t.p_holm, t.accuracy))
          for k in sorted(found) for t in found[k]]


def concept_layer(fn, images, fallback: str) -> str:
  """TCAV's default tap: the representation the trained head reads (a network with a
  ``head_input``, as gradejax's classifier: ``extractor/<head_input>``, by default the face
  descriptor) when it is tapped, else ``fallback`` (the Grad-CAM tap).

  Why there and not at Grad-CAM's spatial tap (measured on the demo, 2026-12-03,
  benchmarks/RESULTS.md): on a network trained on the null world (CUE=0, verdict at chance),
  TCAV at level2 (8 x 8 x 128 = 8192 numbers per image, a CAV from 30 images) found the real
  but irrelevant concept 'tag' significant under 9 of 10 random draws; at the 128-number
  descriptor with the contrast score under 1 of 10, while 'sticker' in the sticker world stays
  significant (4 of 5)."""
  head_input = getattr(getattr(fn, 'module', None), 'head_input', None)
  if head_input:
    name = f'extractor/{head_input}'
    if name in nets.activation_shapes(fn, np.asarray(images[:1])):
      return name
  return fallback


def section(fn, arrays: dict, x_shown: np.ndarray, shown_targets: np.ndarray,
            shown_maps: dict[str, np.ndarray], cfg: Config, inputs: maps_lib.Inputs,
            class_names: list[str], known: dict[int, tuple[int, np.ndarray]],
            cue_masks: dict[int, np.ndarray] | None, chance: bool, conditions: bool = False
            ) -> R.Relies | None:
  """The section's result. Clusters ``cfg.relies.method``'s maps of the held-out fold (those
  in ``known`` reused) or, without folds, of the shown images (``shown_maps``);
  ``cue_masks``: row -> cue region (bool [H, W]) of each row carrying the planted cue (None:
  no truth, no purity or peak in cue); ``chance``: the network's predictions are not
  distinguishable from chance (:func:`chance_verdict`); ``conditions``: the verdict's answer is
  photo conditions (:func:`conditions_verdict`). None when the method has no map here."""
  c = cfg.relies
  rows = fold_rows(arrays, cfg.localisation.valid_fold)
  if rows is not None and len(rows):
    targets, maps = fold_maps(fn, arrays, rows, cfg, inputs, known)
    x = truth.Floats(arrays['images'], rows)
    labels = np.asarray(arrays['label'])[rows] if 'label' in arrays else None
    where = f'the {len(rows)} images of the held-out fold {cfg.localisation.valid_fold}'
  elif c.method in shown_maps:
    rows, targets, maps, x = None, shown_targets, shown_maps[c.method], x_shown
    labels = None
    where = f'the {len(x)} shown images (the data has no held-out fold)'
  else:
    return None
  names = class_names or [str(k) for k in range(int(targets.max()) + 1)]
  size = min(c.size, *maps.shape[1:])
  found = spray.spray(maps, targets, labels, num_classes=len(names), size=size,
                      k_neighbours=c.k_neighbours, max_clusters=c.max_clusters, seed=c.seed)
  findings, out = [], []
  for cls in found:
    for s in cls.strategies:
      m = s.members[:c.members]
      regions = np.stack([spray.top_region(s.mean_map, a) for a in c.areas])
      checks = spray.causal_checks(fn, np.asarray(x[m]), targets[m], regions,
                                   n_random=c.random, batch=max(len(m), 1),
                                   bootstrap=c.bootstrap, seed=c.seed, precision=cfg.precision,
                                   labels=None if labels is None else labels[m],
                                   alpha=0.05 / len(c.areas), **cfg.fill)
      chk = checks[spray.choose_area(checks)]
      region = chk.region
      findings.append(relies_lib.StrategyFinding(s, chk, names[cls.predicted]))
      purity = peak = None
      if cue_masks is not None and rows is not None:
        purity = float(np.mean([int(rows[i]) in cue_masks for i in s.members]))
        peak = peak_in_cue(s.mean_map, [cue_masks[int(rows[i])] for i in s.members
                                        if int(rows[i]) in cue_masks],
                           cfg.localisation.pointing_tolerance)
      out.append(R.StrategyRow(
          names[cls.predicted], s.size, s.share,
          {names[j]: float(v) for j, v in enumerate(s.class_mix) if v > 0}, s.mean_map,
          relies_lib.describe_region(region * s.mean_map), len(m), chk.drop, chk.random_drop,
          chk.excess, purity, peak, chk.label_excess, chk.area))
  layer = (c.layer or concept_layer(fn, x[:1], inputs.layer)) if c.concepts else ''
  tests = _concepts(fn, x, targets, names, cfg, layer) if c.concepts else []
  sentence = relies_lib.quotable(relies_lib.select_strategy(findings), [t for t, _ in tests],
                                 names, chance=chance, conditions=conditions)
  mean_chip = np.clip(np.round(np.mean(np.asarray(x[:]), axis=0) * 255), 0, 255).astype(
      np.uint8)
  return R.Relies(sentence, chance, c.method, len(maps), where, out, [r for _, r in tests],
                  layer, mean_chip, cue_masks is not None and rows is not None,
                  c.score)


def peak_in_cue(mean_map: np.ndarray, cue_masks: list[np.ndarray], tolerance: float
                ) -> float:
  """The share of ``cue_masks`` (bool [H, W] each, of a strategy's cue-bearing members)
  whose region holds ``mean_map``'s maximum within ``tolerance`` px: the pointing game of the
  strategy's one map against each member's cue (NaN without masks)."""
  if not cue_masks:
    return float('nan')
  masks = np.stack(cue_masks)
  maps = np.broadcast_to(np.asarray(mean_map), masks.shape)
  return float(np.mean(localisation.pointing_game(maps, masks, tolerance)))


def _answer(verdict: dict) -> str:
  """The verdict's answer, normalised to :data:`gradejax.evaluation.confounds.ANSWERS`' form."""
  answer = verdict.get('answer')
  return answer.strip().rstrip('.').lower() if isinstance(answer, str) else ''


def chance_verdict(verdict: dict | None) -> bool:
  """Whether a run's ``eval/verdict.json`` (as a dict; None: no verdict) says the *network's*
  predictions are not distinguishable from chance: its ``predictable`` (the CNN's own
  permutation test and CI), whatever the answer. The maps explain this network, so the caveat
  holds also where the answer is 'photo conditions' because baselines on the photos' statistics
  beat chance while the network does not (it then reads none of what they read). A verdict
  without ``predictable`` is read by its answer."""
  if not verdict:
    return False
  if isinstance(verdict.get('predictable'), bool):
    return not verdict['predictable']
  from gradejax.evaluation import confounds  # the verdict's answers
  return _answer(verdict) == confounds.CHANCE


def conditions_verdict(verdict: dict | None) -> bool:
  """Whether a run's verdict answers 'photo conditions' while the network beats chance
  (where the network is at chance, :func:`chance_verdict`'s caveat says more)."""
  if not verdict or chance_verdict(verdict):
    return False
  from gradejax.evaluation import confounds
  return _answer(verdict) == confounds.CONDITIONS
