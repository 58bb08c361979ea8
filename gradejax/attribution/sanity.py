"""Sanity checks for saliency methods (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

A map that explains the *model* must change when the model does. Two randomisations:

* cascading model-parameter randomisation: param subtrees are replaced by freshly initialised
  ones (an explicit key), from the top layer down, cumulatively;
* label randomisation: the caller re-trains (a head of) the model on shuffled labels and hands
  the new params over through a callable.

Maps before/after are compared per image by Spearman rank correlation (of the signed map and of
its absolute value) and SSIM (of the absolute map scaled to [0, 1]), then averaged over images.
A method whose maps stay similar after full randomisation (|map| rank correlation above
``threshold``, 0.9 by default) is flagged: it does not depend on what the model learned.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import jax
import numpy as np
import scipy.stats
import skimage.metrics
from flax import traverse_util

from gradejax import nets

Params = Any
HeatmapFn = Callable[[nets.ModelFn, jax.Array, jax.Array], jax.Array]  # -> [B, H, W]
DEFAULT_THRESHOLD = 0.9


def _scaled(m: np.ndarray) -> np.ndarray:
  m = np.abs(m)
  span = m.max()
  return m / span if span > 0 else m


def similarity(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
  """Mean over images of Spearman (signed, absolute) and SSIM between maps [B, H, W]."""
  before, after = np.asarray(before, np.float64), np.asarray(after, np.float64)
  rho, rho_abs, ssim = [], [], []
  for a, b in zip(before, after):
    for out, (u, v) in ((rho, (a, b)), (rho_abs, (np.abs(a), np.abs(b)))):
      if np.ptp(u) == 0 or np.ptp(v) == 0:  # constant map: rank correlation undefined
        out.append(1.0 if np.array_equal(u, v) else 0.0)
      else:
        out.append(float(scipy.stats.spearmanr(u.ravel(), v.ravel())[0]))
    win = min(7, *a.shape) // 2 * 2 + 1 if min(a.shape) >= 3 else None
    ssim.append(float(skimage.metrics.structural_similarity(
        _scaled(a), _scaled(b), data_range=1.0, win_size=win)))
  return {'spearman': float(np.mean(rho)), 'spearman_abs': float(np.mean(rho_abs)),
          'ssim': float(np.mean(ssim))}


def default_order(params: Params) -> list[str]:
  """Top-level param subtrees, output side first (Flax keeps definition order)."""
  return list(reversed(list(params)))


def cascade_params(params: Params, random_params: Params, order: Sequence[str]
                   ) -> Iterator[tuple[str, Params]]:
  """Yields ``(name, params)`` with the subtrees ``order[:i + 1]`` (``/``-joined paths)
  taken from ``random_params``, for i = 0, 1, ...: the cascade, top layer first."""
  flat = traverse_util.flatten_dict(dict(params), sep='/')
  rand = traverse_util.flatten_dict(dict(random_params), sep='/')
  for name in order:
    hit = [k for k in flat if k == name or k.startswith(name + '/')]
    if not hit:
      raise ValueError(f'no param subtree {name!r}; top-level subtrees: {list(params)}')
    for k in hit:
      flat[k] = rand[k]
    yield name, traverse_util.unflatten_dict(dict(flat), sep='/')


def cascading_randomization(bind: Callable[[Params], nets.ModelFn], params: Params,
                            random_params: Params, images: jax.Array, targets: jax.Array,
                            heatmap: HeatmapFn, order: Sequence[str] | None = None
                            ) -> list[dict[str, Any]]:
  """Similarity of maps to the trained model's, after each cumulative randomisation step.

  ``bind(params) -> ModelFn``; ``random_params``: a fresh initialisation with the same
  structure (e.g. ``module.init(jax.random.key(seed), images)['params']``); ``heatmap(fn,
  images, targets) -> [B, H, W]``. Returns one dict per stage: ``randomized`` (the subtree
  added at this stage), ``spearman``, ``spearman_abs``, ``ssim``.
  """
  order = default_order(params) if order is None else list(order)
  before = np.asarray(heatmap(bind(params), images, targets))
  rows = []
  for name, p in cascade_params(params, random_params, order):
    after = np.asarray(heatmap(bind(p), images, targets))
    rows.append({'randomized': name, **similarity(before, after)})
  return rows


def label_randomization(bind: Callable[[Params], nets.ModelFn], params: Params,
                        retrain: Callable[[], Params], images: jax.Array, targets: jax.Array,
                        heatmap: HeatmapFn) -> dict[str, float]:
  """Similarity of maps of the trained model and of ``retrain()`` (params trained on shuffled
  labels, same structure)."""
  before = np.asarray(heatmap(bind(params), images, targets))
  after = np.asarray(heatmap(bind(retrain()), images, targets))
  return similarity(before, after)


def flagged(stages: Sequence[dict[str, Any]] | dict[str, Any],
            threshold: float = DEFAULT_THRESHOLD) -> bool:
  """True if the maps after the last (full) randomisation still rank-correlate above
  ``threshold`` with the trained model's: the method ignores the model."""
  last = stages[-1] if isinstance(stages, (list, tuple)) else stages
  return bool(last['spearman_abs'] > threshold)
