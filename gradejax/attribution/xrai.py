"""XRAI-style regions (Kapishnikov et al. 2019): rank image regions by attribution density.

A pixel map (any method's, e.g. integrated gradients) is turned into a region map: candidate
regions are superpixels at several scales (SLIC with several segment counts, overlapping; the
paper uses Felzenszwalb segmentations, dilated), and regions are added greedily, each time the
one whose *not yet covered* pixels have the highest mean attribution (gain density). Every
newly covered pixel takes that density as its value, so the output ranks pixels region by
region: the first region added is the densest, and a small, strongly attributed cue becomes one
solid block instead of a few scattered peaks. Pixels no region covers keep -inf -> the minimum.

Segmentation is on the host (:func:`candidate_regions`); the greedy selection is jitted and
batched over images (``lax.fori_loop`` over picks, ``vmap`` over images).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import jax
import jax.numpy as jnp
from jax import lax

from gradejax.attribution import superpixels

Array = jax.Array
SCALES = (16, 32, 64, 128)  # SLIC segment counts: coarse to fine candidate regions


def candidate_regions(images: np.ndarray, scales: Sequence[int] = SCALES,
                      compactness: float = superpixels.SLIC_COMPACTNESS) -> np.ndarray:
  """Multi-scale SLIC regions as masks, bool [B, R, H, W] (R = total segments over scales,
  padded with empty masks to the batch's largest count)."""
  per_scale = [superpixels.slic_segments(images, n, compactness) for n in scales]
  b, h, w = per_scale[0].shape
  masks = [[] for _ in range(b)]
  for seg in per_scale:
    for i in range(b):
      masks[i].extend(seg[i] == k for k in range(int(seg[i].max()) + 1))
  r = max(len(m) for m in masks)
  out = np.zeros((b, r, h, w), bool)
  for i, m in enumerate(masks):
    out[i, :len(m)] = np.stack(m)
  return out


@jax.jit
def greedy_density(attribution: Array, regions: Array) -> Array:
  """XRAI ranking: attribution [B, H, W], regions bool [B, R, H, W] -> [B, H, W] where each
  pixel holds the gain density of the region that first covered it (higher = earlier)."""
  def one(a, masks):
    r = masks.shape[0]
    m = masks.reshape(r, -1).astype(a.dtype)
    a = a.reshape(-1)

    def body(_, state):
      covered, out, used = state
      free = m * (1 - covered)[None]  # [R, P]
      count = free.sum(axis=1)
      density = jnp.where((count > 0) & ~used, (free @ a) / jnp.maximum(count, 1), -jnp.inf)
      best = jnp.argmax(density)
      ok = jnp.isfinite(density[best])
      new = free[best] * ok
      out = jnp.where(new > 0, density[best], out)
      return covered + new, out, used.at[best].set(True)

    init = (jnp.zeros_like(a), jnp.full_like(a, -jnp.inf), jnp.zeros((r,), bool))
    _, out, _ = lax.fori_loop(0, r, body, init)
    low = jnp.min(jnp.where(jnp.isfinite(out), out, jnp.inf))
    return jnp.where(jnp.isfinite(out), out, low)

  b, h, w = attribution.shape
  return jax.vmap(one)(attribution, regions).reshape(b, h, w)


def xrai(attribution: Array, images: np.ndarray, *, scales: Sequence[int] = SCALES,
         regions: np.ndarray | None = None) -> Array:
  """The XRAI-style region map [B, H, W] of a pixel ``attribution`` [B, H, W] of ``images``."""
  if regions is None:
    regions = candidate_regions(np.asarray(images), scales)
  return greedy_density(jnp.asarray(attribution, jnp.float32), jnp.asarray(regions))
