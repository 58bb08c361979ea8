"""Gradient family: vanilla saliency, gradient x input, SmoothGrad, integrated gradients.

All take ``images [B, H, W, C]`` float32 in [0, 1] and ``targets`` int [B] (or a scalar) and
return attributions shaped like ``images`` (per pixel and channel, in units of target score per
unit of input for gradients, and of target score for gradient x input and IG).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gradejax import batching, nets
from gradejax.attribution.common import as_targets, chunk_scan, input_gradient, method

Array = jax.Array


@method
def saliency(fn: nets.ModelFn, images: Array, targets: Array, *,
             relu: nets.Relu = nn.relu) -> Array:
  """Simonyan et al. 2014: d score / d pixel, [B, H, W, C]."""
  return input_gradient(fn, images, as_targets(targets, images.shape[0]), relu)


@method
def gradient_x_input(fn: nets.ModelFn, images: Array, targets: Array, *,
                     relu: nets.Relu = nn.relu) -> Array:
  """Shrikumar et al. 2016: image * gradient, [B, H, W, C] (target-score units)."""
  return images * input_gradient(fn, images, as_targets(targets, images.shape[0]), relu)


def _chunks(n: int, chunk: int) -> tuple[int, int]:
  if n < 1 or chunk < 1:
    raise ValueError(f'need at least one step/sample and chunk >= 1, got n={n}, chunk={chunk}')
  chunk = min(chunk, n)
  return chunk, batching.padded_length(n, chunk) // chunk


def _stacked_gradient(fn, x, targets, relu):
  """x [S, B, H, W, C] -> per-copy gradients [S, B, H, W, C] in one batched backward pass."""
  s, b = x.shape[:2]
  g = input_gradient(fn, x.reshape((s * b,) + x.shape[2:]), jnp.tile(targets, s), relu)
  return g.reshape(x.shape)


@method
def smoothgrad(fn: nets.ModelFn, images: Array, targets: Array, key: Array, *,
               noise_level: float | Array = 0.15, n_samples: int = 32, chunk: int = 8,
               relu: nets.Relu = nn.relu, unroll: int | bool | None = None) -> Array:
  """Smilkov et al. 2017: mean gradient over ``n_samples`` noisy copies, [B, H, W, C].

  Noise is Gaussian with std ``noise_level * (max - min)`` of each image (the paper's
  parametrisation). ``chunk`` noisy copies of the whole batch go through the network at once;
  a ``lax.scan`` over ``ceil(n_samples / chunk)`` steps keeps memory at ``chunk * B`` images.
  Sample ``i`` uses ``fold_in(key, i)``, so the result does not depend on ``chunk``.
  ``unroll``: see :func:`common.scan_unroll`.
  """
  t = as_targets(targets, images.shape[0])
  chunk, n_steps = _chunks(n_samples, chunk)
  span = jnp.max(images, axis=(1, 2, 3), keepdims=True) - jnp.min(images, axis=(1, 2, 3),
                                                                  keepdims=True)
  sigma = noise_level * span

  def body(acc, idx):  # idx [chunk] sample indices; those >= n_samples carry weight 0
    noise = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), images.shape))(idx)
    g = _stacked_gradient(fn, images[None] + sigma[None] * noise, t, relu)
    w = (idx < n_samples).astype(g.dtype)
    return acc + jnp.tensordot(w, g, axes=1), None

  idx = jnp.arange(n_steps * chunk).reshape(n_steps, chunk)
  total, _ = chunk_scan(body, jnp.zeros_like(images), idx, unroll)
  return total / n_samples


@method
def integrated_gradients(fn: nets.ModelFn, images: Array, targets: Array,
                         baseline: Array | None = None, *, steps: int = 64, chunk: int = 16,
                         relu: nets.Relu = nn.relu, unroll: int | bool | None = None
                         ) -> Array:
  """Sundararajan et al. 2017: ``(x - x') * mean_k grad(x' + a_k (x - x'))``, [B, H, W, C].

  ``baseline`` x' broadcasts to ``images`` (None: black, all zeros). The path integral uses the
  midpoint rule, ``a_k = (k + 1/2) / steps``; its sum over pixels and channels approaches
  ``score(x) - score(x')`` (completeness) as ``steps`` grows. ``chunk`` path points of the whole
  batch go through the network at once (memory: ``chunk * B`` images), scanned over the rest
  (``unroll``: see :func:`common.scan_unroll`).
  """
  t = as_targets(targets, images.shape[0])
  base = jnp.zeros_like(images) if baseline is None else jnp.broadcast_to(baseline, images.shape)
  delta = images - base
  chunk, n_steps = _chunks(steps, chunk)

  def body(acc, idx):  # idx [chunk] path-point indices; those >= steps carry weight 0
    a = (idx.astype(images.dtype) + 0.5) / steps
    x = base[None] + a[:, None, None, None, None] * delta[None]
    g = _stacked_gradient(fn, x, t, relu)
    w = (idx < steps).astype(g.dtype)
    return acc + jnp.tensordot(w, g, axes=1), None

  idx = jnp.arange(n_steps * chunk).reshape(n_steps, chunk)
  total, _ = chunk_scan(body, jnp.zeros_like(images), idx, unroll)
  return delta * total / steps
