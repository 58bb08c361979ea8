"""The battery's checks on computed maps: model-randomisation sanity, deletion / insertion and
ROAD faithfulness, localisation of a known cue (shown images; held-out fold with bootstrap
CIs), the causal check (remove the map's top square vs random squares) and the ranking."""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import numpy as np

from gradejax import batching, distributed, nets, progress
from gradejax.attribution import faithfulness, localisation, registry, sanity
from gradejax.attribution.battery import result as R
from gradejax.attribution.battery.config import Config, Localisation
from gradejax.attribution.battery.maps import Inputs


def sanity_check(module, variables, x, targets, methods: Sequence[str], cfg: Config,
                 inputs: Inputs, retrain: Callable[[], object] | None = None,
                 trained_maps: dict[str, np.ndarray] | None = None) -> R.Sanity:
  """Cascading model-parameter randomisation (and label randomisation with ``retrain() ->
  params``, called at most once) of each method on the first ``cfg.sanity.images`` images.

  ``trained_maps`` (method -> [B, H, W] of the trained model on ``x``, e.g. the shown maps)
  stand in for the trained model's maps the checks compare with, instead of computing them
  again (twice per method: the cascade's and the label check's reference)."""
  n = min(cfg.sanity.images, len(x))
  out = lambda rows, why='': R.Sanity(rows, n, cfg.sanity.seed, retrain is not None, why)
  if not methods:
    return out([], 'No pixel-map method was computed.')
  xs, ts = x[:cfg.sanity.images], targets[:cfg.sanity.images]
  params = variables['params']
  try:
    fresh = module.init(jax.random.key(cfg.sanity.seed), xs[:1])['params']
  except Exception as e:  # noqa: BLE001 - any init failure only removes this section
    return out([], f'Not run: module.init failed ({e}).')
  # Placed as the trained leaves are: a checkpoint's arrays are committed to their device, a
  # fresh init's are not, and jit compiles a method again for a cascade stage that mixes them.
  fresh = jax.tree.map(lambda a, ref: jax.device_put(a, ref.sharding)
                       if getattr(ref, 'committed', False) and ref.sharding.is_fully_addressable
                       else a, fresh, params)
  others = {k: v for k, v in variables.items() if k != 'params'}
  trained: dict[int, object] = {}  # id -> the trained model's bound fns (kept alive)

  def bind(p):
    f = nets.bind(module, {**others, 'params': p})
    if p is params:
      trained[id(f)] = f
    return f

  def heatmap_fn(m):
    compute = inputs.heatmap_fn(m)
    # A method drawing random numbers draws them for the batch's shape: the shown maps (more
    # images) are not what it gives on these; it computes its reference itself.
    if (trained_maps is None or m not in trained_maps or m == 'xrai'
        or (registry.get(m).needs_key and len(trained_maps[m]) != len(xs))):
      return compute
    ref = np.asarray(trained_maps[m])[:len(xs)]
    return lambda f, xb, tb: ref if id(f) in trained else compute(f, xb, tb)

  rows = []
  with progress.task('report: sanity checks', len(methods), unit='methods') as p:
    for m in methods:
      try:
        stages = sanity.cascading_randomization(bind, params, fresh, xs, ts, heatmap_fn(m))
      except ValueError as e:
        rows.append(R.SanityRow(m, f'failed: {e}', float('nan'), float('nan'), float('nan'),
                                False))
        p.update()
        continue
      for s in stages:
        rows.append(R.SanityRow(m, f'+ {s["randomized"]}', s['spearman'], s['spearman_abs'],
                                s['ssim'], s is stages[-1] and sanity.flagged(stages)))
      if retrain is not None:
        s = sanity.label_randomization(bind, params, retrain, xs, ts, heatmap_fn(m))
        rows.append(R.SanityRow(m, 'labels shuffled', s['spearman'], s['spearman_abs'],
                                s['ssim'], sanity.flagged(s)))
      p.update()
  return out(rows)


def faithfulness_rows(fn, x, targets, maps, methods, cfg: Config, classes: int
                      ) -> list[R.FaithfulnessRow]:
  """Per method: deletion / insertion AUC and ROAD MoRF / LeRF AUC, means over the images."""
  score = 'softmax' if classes > 1 else 'logit'
  fr = tuple(cfg.faithfulness.road_fractions)
  rows = []
  with progress.task('report: faithfulness', len(methods), unit='methods') as p:
    for m in methods:
      aucs = []
      for mode in ('deletion', 'insertion'):
        c = faithfulness.curve(fn, x, targets, maps[m], mode=mode, steps=cfg.faithfulness.steps,
                               score=score, precision=cfg.precision)
        aucs.append(float(np.mean(faithfulness.auc(c))))
      for order in ('morf', 'lerf'):
        c = faithfulness.road(fn, x, targets, maps[m], jax.random.key(cfg.seed), order=order,
                              fractions=fr, score=score, precision=cfg.precision)
        aucs.append(float(np.mean(faithfulness.road_auc(c, fr))))
      rows.append(R.FaithfulnessRow(m, *aucs))
      p.update()
  return rows


def shown_localisation(maps, methods, ids, masks: dict, cfg: Localisation
                       ) -> tuple[list[R.ShownLocalisationRow], float]:
  """Mass inside and pointing game on the shown images that carry the cue; (rows, area)."""
  if not masks:
    return [], float('nan')
  pick = [k for k, i in enumerate(ids) if i in masks]
  m_arr = np.stack([masks[ids[k]] for k in pick])
  rows = []
  for m in methods:
    h = maps[m][pick]
    mass = localisation.mass_inside(h, m_arr)
    hit = localisation.pointing_game(h, m_arr, cfg.pointing_tolerance)
    rows.append(R.ShownLocalisationRow(m, float(np.nanmean(mass)), float(hit.mean()), len(pick)))
  return rows, float(m_arr.mean())


def meets_target(pointing: float, mass: float, area: float, cfg: Localisation) -> bool:
  """The localisation target: pointing game and mass inside (x uniform) both reach theirs."""
  return bool(pointing >= cfg.pointing_target and mass >= cfg.mass_target_x_uniform * area)


def localisation_rows(maps: dict[str, np.ndarray], masks: np.ndarray, cfg: Localisation
                      ) -> list[R.FoldLocalisationRow]:
  """Per method: mean and bootstrap CI over images of mass inside, pointing game and
  relevance-rank accuracy, best first (pointing game, then mass inside)."""
  area = float(masks.mean())
  rows = []
  for m, h in maps.items():
    ci = lambda v, j: localisation.bootstrap_ci(v, cfg.bootstrap, seed=cfg.seed + j)
    mass = ci(localisation.mass_inside(h, masks), 0)
    pointing = ci(localisation.pointing_game(h, masks, cfg.pointing_tolerance), 1)
    rank = ci(localisation.relevance_rank_accuracy(h, masks), 2)
    rows.append(R.FoldLocalisationRow(m, len(h), area, mass, pointing, rank,
                                      meets_target(pointing[0], mass[0], area, cfg)))
  return sorted(rows, key=lambda r: (-np.nan_to_num(r.pointing[0], nan=-1),
                                     -np.nan_to_num(r.mass[0], nan=-1)))


def _top_square(h: np.ndarray, k: int) -> tuple[int, int]:
  """Top-left corner of the k x k window with the largest summed map value."""
  c = np.pad(np.cumsum(np.cumsum(np.asarray(h, np.float64), 0), 1), ((1, 0), (1, 0)))
  sums = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
  return np.unravel_index(np.argmax(sums), sums.shape)


def causal_rows(fn, x: np.ndarray, targets: np.ndarray, maps: dict[str, np.ndarray],
                cfg: Config, cue: np.ndarray | None = None) -> list[R.CausalRow]:
  """The causal check: per method, the drop of the predicted class's score (logit) when the
  map's top ``cfg.causal.size`` square is removed (``cfg.fill``), beside the mean drop over
  ``cfg.causal.random`` random squares of the same size, each with a bootstrap CI over images;
  with ``cue`` masks, a first row removes the cue itself (dilated by 2 px)."""
  b, h, w = x.shape[:3]
  k = min(cfg.causal.size, h, w)
  rng = np.random.default_rng(cfg.seed)
  corners = rng.integers(0, [h - k + 1, w - k + 1], size=(cfg.causal.random, b, 2))
  square = lambda y0, x0: np.pad(np.ones((k, k), np.float32), ((y0, h - k - y0), (x0, w - k - x0)))
  rand = np.stack([[square(*corners[r, i]) for i in range(b)] for r in range(cfg.causal.random)])

  here = distributed.batch_split(b, cfg.batch)  # this process's whole batches
  calls = -(-(here.stop - here.start) // cfg.batch)
  # Counted in removals per batch (the random squares are cfg.causal.random of them, each
  # map's top square one), so the ETA weighs the random batches by their cost.
  p = progress.task('report: causal check',
                    calls * (len(maps) + cfg.causal.random + (cue is not None)),
                    unit='batch removals').start()

  def drops(removed):  # removed [R, B, H, W] -> drop per image, mean over R: [B]
    out = [np.zeros((0,), np.float32)]
    for i in range(here.start, here.stop, cfg.batch):
      j = min(i + cfg.batch, here.stop)
      xb, tb, rb = np.asarray(x[i:j]), targets[i:j], removed[:, i:j]
      if j - i < cfg.batch < here.stop - here.start:  # a short last batch: no new compile
        xb, tb = batching.pad_to_multiple(xb, cfg.batch), batching.pad_to_multiple(tb, cfg.batch)
        rb = np.swapaxes(batching.pad_to_multiple(np.swapaxes(rb, 0, 1), cfg.batch), 0, 1)
      out.append(np.asarray(faithfulness.removal_drop(
          fn, xb, tb, rb, **cfg.fill, precision=cfg.precision)).mean(axis=0)[:j - i])
      p.update(len(rb))
    return distributed.gather_rows(np.concatenate(out), b)

  ci = lambda v: localisation.bootstrap_ci(v, cfg.localisation.bootstrap, seed=cfg.seed)
  random_drop = drops(rand)
  rows = []
  if cue is not None:
    import scipy.ndimage
    grown = np.stack([scipy.ndimage.binary_dilation(c, iterations=2) for c in cue])
    rows.append(R.CausalRow('(the planted cue itself)', ci(drops(grown[None].astype(np.float32))),
                            ci(random_drop), int(round(grown.sum(axis=(1, 2)).mean()))))
  for m, hm in maps.items():
    tops = np.stack([square(*_top_square(hm[i], k)) for i in range(b)])
    rows.append(R.CausalRow(m, ci(drops(tops[None])), ci(random_drop), k * k))
  p.close()
  return rows


def ranking(fold: list[R.FoldLocalisationRow], faith: list[R.FaithfulnessRow]
            ) -> tuple[list[str], str]:
  """Methods best first: by fold localisation when measured, else by faithfulness
  (insertion - deletion plus ROAD LeRF - MoRF, higher first); (order, basis)."""
  if fold:
    return [r.method for r in fold], 'localisation'
  ranked = sorted(faith, key=lambda r: -(r.insertion_minus_deletion + r.lerf_minus_morf))
  return [r.method for r in ranked], 'faithfulness'
