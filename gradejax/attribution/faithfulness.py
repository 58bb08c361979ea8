"""Deletion and insertion curves (Petsiuk et al. 2018, RISE): does the map rank pixels by how
much the model needs them?

Deletion: the most-attributed pixels are replaced by a baseline, a fraction ``k / steps`` at a
time, and the target score is read at every step; a faithful map makes it fall fast (low AUC).
Insertion: start from the baseline and put the most-attributed pixels back; it should rise fast
(high AUC). All ``steps + 1`` copies of all images run through the network in chunks.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gradejax import imageops, nets
from gradejax.attribution.common import as_targets, chunked_map, method, pick

Array = jax.Array


def blur(images: Array, sigma: float = 5.0) -> Array:
  """The insertion baseline: a Gaussian blur of [B, H, W, C] with replicated edges."""
  return imageops.gaussian_blur(images, sigma, edge='edge')


def _score(out: Array, t: Array, score: str) -> Array:
  if score == 'softmax':
    return pick(jax.nn.softmax(out, axis=-1), t)
  if score == 'logit':
    return pick(out, t)
  raise ValueError(f"score must be 'softmax' or 'logit', got {score!r}")


@method('mode', 'steps', 'score', 'chunk', 'unroll')
def curve(fn: nets.ModelFn, images: Array, targets: Array, heatmaps: Array,
          baseline: Array | None = None, *, mode: str = 'deletion', steps: int = 20,
          score: str = 'softmax', chunk: int = 8,
          unroll: int | bool | None = None) -> Array:
  """Target score after each step, ``[B, steps + 1]`` (step 0: nothing deleted / inserted).

  ``heatmaps`` [B, H, W] rank the pixels (ties broken by position); ``baseline`` broadcasts to
  ``images`` (None: black for deletion, a blurred copy for insertion); ``score``: 'softmax'
  (class probability, for classifiers) or 'logit' (the raw output, e.g. a descriptor unit).
  """
  if mode not in ('deletion', 'insertion'):
    raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
  b, h, w, c = images.shape
  t = as_targets(targets, b)
  if baseline is None:
    baseline = jnp.zeros_like(images) if mode == 'deletion' else blur(images)
  baseline = jnp.broadcast_to(baseline, images.shape)
  order = jnp.argsort(-heatmaps.reshape(b, -1), axis=1, stable=True)
  rank = jnp.argsort(order, axis=1).reshape(b, h, w)  # 0 = most attributed
  chunk = max(1, min(chunk, steps + 1))
  n_pad = -(-(steps + 1) // chunk) * chunk

  def run(ks):  # ks [chunk] step indices
    n = jnp.round(ks.astype(jnp.float32) * (h * w) / steps).astype(jnp.int32)
    hit = (rank[None] < n[:, None, None, None])[..., None]  # [chunk, B, H, W, 1]
    if mode == 'deletion':
      x = jnp.where(hit, baseline[None], images[None])
    else:
      x = jnp.where(hit, images[None], baseline[None])
    out, _ = fn(x.reshape((chunk * b, h, w, c)))
    return _score(out, jnp.tile(t, chunk), score).reshape(chunk, b)

  ks = jnp.minimum(jnp.arange(n_pad), steps).reshape(-1, chunk)
  return chunked_map(run, ks, unroll).reshape(n_pad, b)[:steps + 1].T


def auc(curves: Array) -> Array:
  """Area under ``[B, S + 1]`` curves over the fraction 0..1 (trapezoid rule), [B]."""
  s = curves.shape[1] - 1
  return (jnp.sum(curves, axis=1) - 0.5 * (curves[:, 0] + curves[:, -1])) / s
