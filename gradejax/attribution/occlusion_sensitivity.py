"""Occlusion sensitivity (Zeiler & Fergus 2014): how much the score drops when a patch is hidden.

Patches of ``patch x patch`` pixels at top-left corners ``(i * stride, j * stride)`` that fit in
the image (``ny = (H - patch) // stride + 1``, likewise ``nx``); every occluded copy of every
image is run through the network in batches of ``chunk`` positions x B images.

The hidden patch is filled as :mod:`gradejax.attribution.fills` says (``fill_mode``: a constant
``fill``, a blurred copy, or inpainted from the patch's surroundings). :func:`occlusion_multiscale`
combines several patch sizes (a small patch finds a small cue a large one dilutes; a large one
finds what a small one leaves readable around its edge).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from gradejax import batching, nets
from gradejax.attribution import fills
from gradejax.attribution.common import as_targets, chunked_map, class_score, method

Array = jax.Array


def grid_shape(height: int, width: int, patch: int, stride: int) -> tuple[int, int]:
  if not (0 < patch <= min(height, width)) or stride < 1:
    raise ValueError(f'occlusion needs 0 < patch <= {min(height, width)} and stride >= 1, got '
                     f'patch={patch}, stride={stride}')
  return (height - patch) // stride + 1, (width - patch) // stride + 1


DEFAULT_FILL = fills.DEFAULT_FILL  # re-exported: the report's --fill default
# Zeiler & Fergus's square occluder; regions.py's occlusion source shares it.
DEFAULT_PATCH = 15
DEFAULT_STRIDE = 15


def _cover(n: int, size: int, patch: int, stride: int) -> Array:
  """[n, size] float: 1 where patch position i covers pixel row/column p."""
  p = jnp.arange(size)[None, :]
  start = (jnp.arange(n) * stride)[:, None]
  return ((p >= start) & (p < start + patch)).astype(jnp.float32)


def occlusion_all_outputs(fn: nets.ModelFn, images: Array, *, patch: int, stride: int,
                          fill: float | Array = fills.DEFAULT_FILL, chunk: int = 16,
                          unroll: int | bool | None = None,
                          fill_mode: str = fills.DEFAULT_MODE,
                          blur_sigma: float = fills.DEFAULT_SIGMA, keep: bool = False) -> Array:
  """``outputs(x) - outputs(x occluded at (i, j))`` for every output unit: [B, ny, nx, K].

  ``fill`` is the occluder's value (scalar or broadcastable to one image ``[H, W, C]``) when
  ``fill_mode`` is 'value'; 'blur' / 'inpaint' use ``blur_sigma`` (pixels) instead.
  ``keep``: fill everything *but* the square instead (the preservation game over squares: the
  square that keeps the score highest has the lowest drop). Traceable helper (not jitted).
  """
  b, h, w, c = images.shape
  ny, nx = grid_shape(h, w, patch, stride)
  rows, cols = _cover(ny, h, patch, stride), _cover(nx, w, patch, stride)
  n = ny * nx
  chunk = max(1, min(chunk, n))
  base = fills.prepare(images, fill, fill_mode, blur_sigma)
  clean, _ = fn(images)

  def run(pos):  # pos [chunk] flat positions (padded ones repeat the last and are dropped)
    masks = rows[pos // nx][:, :, None] * cols[pos % nx][:, None, :]  # [chunk, H, W]
    if keep:
      masks = 1.0 - masks
    x = fills.apply(images, masks, base, fill_mode, blur_sigma)
    out, _ = fn(x.reshape((chunk * b, h, w, c)))
    return clean[None] - out.reshape((chunk, b, -1))

  pos = batching.chunk_positions(n, chunk)
  drops = chunked_map(run, pos, unroll).reshape((pos.size, b, -1))[:n]  # [P, B, K]
  return jnp.transpose(drops, (1, 0, 2)).reshape((b, ny, nx, -1))


@method
def occlusion_grid(fn: nets.ModelFn, images: Array, targets: Array, *,
                   patch: int = DEFAULT_PATCH, stride: int = DEFAULT_STRIDE,
                   fill: float | Array = fills.DEFAULT_FILL, chunk: int = 16,
                   unroll: int | bool | None = None, fill_mode: str = fills.DEFAULT_MODE,
                   blur_sigma: float = fills.DEFAULT_SIGMA, score: str = 'logit') -> Array:
  """Target-score drop per occluder position, [B, ny, nx] (score units; > 0: patch helped).
  ``score``: 'logit' or 'contrast' (:func:`gradejax.attribution.common.class_score`)."""
  t = as_targets(targets, images.shape[0])
  d = occlusion_all_outputs(fn, images, patch=patch, stride=stride, fill=fill, chunk=chunk,
                            unroll=unroll, fill_mode=fill_mode, blur_sigma=blur_sigma)
  return class_score(d, t, score)


def grid_to_pixels(grid: Array, size: tuple[int, int], patch: int, stride: int,
                   aggregate: str = 'mean') -> Array:
  """[B, ny, nx] per-position values -> [B, H, W].

  ``aggregate``: 'mean' (the mean over the patches covering each pixel, 0 where none does) or
  'centre' (each pixel takes the position whose patch centre is nearest: the map peaks where
  the single most important patch is centred, instead of averaging that patch's drop with the
  partial covers around it -- a cue that is still read when half hidden only drops the score
  when one patch hides all of it, and the mean dilutes that one patch 1 : (patch/stride)^2).
  """
  ny, nx = grid.shape[1:]
  if aggregate == 'centre':
    at = lambda n, size: jnp.clip(jnp.round((jnp.arange(size) - (patch - 1) / 2) / stride),
                                  0, n - 1).astype(jnp.int32)
    return grid[:, at(ny, size[0])][:, :, at(nx, size[1])]
  if aggregate != 'mean':
    raise ValueError(f"aggregate must be 'mean' or 'centre', got {aggregate!r}")
  rows, cols = _cover(ny, size[0], patch, stride), _cover(nx, size[1], patch, stride)
  total = jnp.einsum('byx,yh,xw->bhw', grid, rows, cols)
  count = jnp.einsum('yh,xw->hw', rows, cols)
  return jnp.where(count > 0, total / jnp.maximum(count, 1), 0.0)


@method
def occlusion(fn: nets.ModelFn, images: Array, targets: Array, *, patch: int = DEFAULT_PATCH,
              stride: int = DEFAULT_STRIDE, fill: float | Array = fills.DEFAULT_FILL,
              chunk: int = 16, unroll: int | bool | None = None,
              fill_mode: str = fills.DEFAULT_MODE, blur_sigma: float = fills.DEFAULT_SIGMA,
              aggregate: str = 'mean', score: str = 'logit') -> Array:
  """Occlusion map at the input resolution, [B, H, W]: each pixel gets the mean score drop of
  the occluder positions covering it (0 where none does), or with ``aggregate='centre'`` the
  drop of the position centred nearest to it (:func:`grid_to_pixels`). ``score``: the drop of
  the target's logit or of its contrast with the other classes (``class_score``)."""
  grid = occlusion_grid.unjitted(fn, images, targets, patch=patch, stride=stride, fill=fill,
                                 chunk=chunk, unroll=unroll, fill_mode=fill_mode,
                                 blur_sigma=blur_sigma, score=score)
  return grid_to_pixels(grid, images.shape[1:3], patch, stride, aggregate)


def combine_scales(maps: Sequence[Array], combine: str = 'mean') -> Array:
  """Occlusion maps [B, H, W] at several patch sizes -> one [B, H, W]: each divided by its
  largest |value| per image (so no scale dominates by the size of its drops), then their
  'mean' or 'max' per pixel (a pixel counts if any scale finds it)."""
  if combine not in ('mean', 'max'):
    raise ValueError(f"combine must be 'mean' or 'max', got {combine!r}")
  normed = []
  for m in maps:
    scale = jnp.max(jnp.abs(m), axis=(1, 2), keepdims=True)
    normed.append(m / jnp.where(scale > 0, scale, 1.0))
  stack = jnp.stack(normed)
  return jnp.mean(stack, axis=0) if combine == 'mean' else jnp.max(stack, axis=0)


@method
def occlusion_multiscale(fn: nets.ModelFn, images: Array, targets: Array, *,
                         patches: tuple[int, ...] = (7, 15, 29),
                         strides: tuple[int, ...] | None = None, combine: str = 'mean',
                         fill: float | Array = fills.DEFAULT_FILL, chunk: int = 16,
                         unroll: int | bool | None = None,
                         fill_mode: str = fills.DEFAULT_MODE,
                         blur_sigma: float = fills.DEFAULT_SIGMA, aggregate: str = 'mean',
                         score: str = 'logit') -> Array:
  """Occlusion maps at several patch sizes, combined per pixel (:func:`combine_scales`):
  [B, H, W].

  ``strides`` default to half of each patch (rounded up), so every pixel is covered at every
  scale. ``aggregate`` and ``score`` as in :func:`occlusion`, for every scale. Patches larger
  than the image are clipped to it.
  """
  if combine not in ('mean', 'max'):
    raise ValueError(f"combine must be 'mean' or 'max', got {combine!r}")
  h, w = images.shape[1:3]
  strides = strides or tuple(max(1, -(-p // 2)) for p in patches)
  if len(strides) != len(patches):
    raise ValueError(f'occlusion_multiscale: {len(patches)} patches but {len(strides)} strides')
  maps = [occlusion.unjitted(fn, images, targets, patch=min(p, h, w), stride=s, fill=fill,
                             chunk=chunk, unroll=unroll, fill_mode=fill_mode,
                             blur_sigma=blur_sigma, aggregate=aggregate, score=score)
          for p, s in zip(patches, strides)]
  return combine_scales(maps, combine)
