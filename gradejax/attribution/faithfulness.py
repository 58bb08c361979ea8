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

from gradejax import batching, imageops, nets
from gradejax.attribution import fills
from gradejax.attribution.common import as_targets, chunked_map, method, pick

Array = jax.Array


def blur(images: Array, sigma: float = fills.DEFAULT_SIGMA) -> Array:
  """The insertion baseline: a Gaussian blur of [B, H, W, C] with replicated edges."""
  return imageops.gaussian_blur(images, sigma, edge='edge')


def _score(out: Array, t: Array, score: str) -> Array:
  if score == 'softmax':
    return pick(jax.nn.softmax(out, axis=-1), t)
  if score == 'logit':
    return pick(out, t)
  raise ValueError(f"score must be 'softmax' or 'logit', got {score!r}")


@method
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

  def run(ks):  # ks [chunk] step indices
    n = jnp.round(ks.astype(jnp.float32) * (h * w) / steps).astype(jnp.int32)
    hit = (rank[None] < n[:, None, None, None])[..., None]  # [chunk, B, H, W, 1]
    if mode == 'deletion':
      x = jnp.where(hit, baseline[None], images[None])
    else:
      x = jnp.where(hit, images[None], baseline[None])
    out, _ = fn(x.reshape((chunk * b, h, w, c)))
    return _score(out, jnp.tile(t, chunk), score).reshape(chunk, b)

  ks = batching.chunk_positions(steps + 1, chunk)
  return chunked_map(run, ks, unroll).reshape(-1, b)[:steps + 1].T


def auc(curves: Array) -> Array:
  """Area under ``[B, S + 1]`` curves over the fraction 0..1 (trapezoid rule), [B]."""
  s = curves.shape[1] - 1
  return (jnp.sum(curves, axis=1) - 0.5 * (curves[:, 0] + curves[:, -1])) / s


def _neighbour_mean(x: Array) -> Array:
  """ROAD's linear-imputation stencil: 1/6 for each 4-neighbour, 1/12 for each diagonal one
  (replicated edges), over [..., H, W, C]."""
  lead = x.ndim - 3
  p = jnp.pad(x, [(0, 0)] * lead + [(1, 1), (1, 1), (0, 0)], mode='edge')
  h, w = x.shape[-3], x.shape[-2]
  at = lambda dy, dx: p[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w, :]
  return ((at(-1, 0) + at(1, 0) + at(0, -1) + at(0, 1)) / 6
          + (at(-1, -1) + at(-1, 1) + at(1, -1) + at(1, 1)) / 12)


def noisy_linear_impute(images: Array, removed: Array, key: Array, *, iterations: int = 40,
                        noise: float = 0.01, sigma: float = fills.DEFAULT_SIGMA) -> Array:
  """ROAD's noisy linear imputation (Rong et al. 2022), [B, H, W, C].

  ``removed`` bool/float [B, H, W]. Each removed pixel should equal the stencil-weighted mean of
  its neighbours (a discrete Laplace equation with the kept pixels as boundary values); the
  paper solves that sparse system exactly, here ``iterations`` Jacobi sweeps started from a
  normalised-convolution inpainting (:mod:`gradejax.attribution.fills`, ``sigma``) approximate
  it. Gaussian noise of std ``noise`` is added to the imputed pixels, so the model cannot read
  the removal pattern from perfectly smooth fills (the point of ROAD's noise).
  """
  m = jnp.asarray(removed, images.dtype)[..., None]  # [B, H, W, 1]
  base = fills.prepare(images, 0.0, 'inpaint', sigma)
  x = fills.apply(images, m[None, ..., 0], base, 'inpaint', sigma)[0]
  x = jax.lax.fori_loop(0, iterations,
                        lambda _, y: images * (1 - m) + _neighbour_mean(y) * m, x)
  return x + noise * jax.random.normal(key, x.shape, x.dtype) * m


@method
def road(fn: nets.ModelFn, images: Array, targets: Array, heatmaps: Array, key: Array, *,
         fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9), order: str = 'morf',
         score: str = 'softmax', iterations: int = 40, noise: float | Array = 0.01, chunk: int = 3,
         unroll: int | bool | None = None) -> Array:
  """ROAD (remove and debias): target score after removing each fraction of pixels and
  imputing them (:func:`noisy_linear_impute`), ``[B, len(fractions) + 1]`` (column 0: the clean
  image). ``order``: 'morf' (most relevant first; a faithful map drops fast, low AUC) or 'lerf'
  (least relevant first; stays high)."""
  if order not in ('morf', 'lerf'):
    raise ValueError(f"order must be 'morf' or 'lerf', got {order!r}")
  b, h, w, c = images.shape
  t = as_targets(targets, b)
  sign = -1.0 if order == 'morf' else 1.0
  order_idx = jnp.argsort(sign * heatmaps.reshape(b, -1), axis=1, stable=True)
  rank = jnp.argsort(order_idx, axis=1).reshape(b, h, w)
  fr = jnp.asarray((0.0,) + tuple(fractions), jnp.float32)
  n = fr.shape[0]
  chunk = max(1, min(chunk, n))
  idx = batching.chunk_positions(n, chunk)

  def run(ks):
    k = jnp.round(fr[ks] * h * w).astype(jnp.int32)
    hit = rank[None] < k[:, None, None, None]  # [chunk, B, H, W]
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(ks)
    x = jax.vmap(lambda r, kk: noisy_linear_impute(images, r, kk, iterations=iterations,
                                                   noise=noise))(hit, keys)
    x = jnp.where(hit[..., None], x, images[None])
    out, _ = fn(x.reshape((chunk * b, h, w, c)))
    return _score(out, jnp.tile(t, chunk), score).reshape(chunk, b)

  return chunked_map(run, idx, unroll).reshape(-1, b)[:n].T


def road_auc(curves: Array, fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
             ) -> Array:
  """Area under ROAD curves ``[B, F + 1]`` over the removed fraction 0 .. max (trapezoid rule
  on the given, possibly uneven, fractions), normalised by that range: [B]."""
  x = jnp.asarray((0.0,) + tuple(fractions))
  dx = jnp.diff(x)
  area = jnp.sum(0.5 * (curves[:, 1:] + curves[:, :-1]) * dx[None], axis=1)
  return area / x[-1]


@method
def removal_drop(fn: nets.ModelFn, images: Array, targets: Array, removed: Array, *,
                 fill: float | Array = fills.DEFAULT_FILL, fill_mode: str = 'inpaint',
                 blur_sigma: float = fills.DEFAULT_SIGMA, chunk: int = 4,
                 unroll: int | bool | None = None) -> Array:
  """The causal check's primitive: target-logit drop when the ``removed`` pixels of each image
  are filled (:mod:`gradejax.attribution.fills`), ``removed`` float [R, B, H, W] -> [R, B]
  (``clean - removed``; > 0: the region helped the prediction)."""
  t = as_targets(targets, images.shape[0])
  drops = removal_output_drops.unjitted(fn, images, removed, fill=fill, fill_mode=fill_mode,
                                        blur_sigma=blur_sigma, chunk=chunk, unroll=unroll)
  return drops[:, jnp.arange(t.shape[0]), t]  # [R, B]: each image's target


@method
def removal_output_drops(fn: nets.ModelFn, images: Array, removed: Array, *,
                         fill: float | Array = fills.DEFAULT_FILL, fill_mode: str = 'inpaint',
                         blur_sigma: float = fills.DEFAULT_SIGMA, chunk: int = 4,
                         unroll: int | bool | None = None) -> Array:
  """:func:`removal_drop` of every output at once: ``removed`` float [R, B, H, W] -> [R, B, K]
  (``clean - removed`` for each of the K outputs), so one set of forwards scores the drop of
  any class, or of a contrast between classes (:func:`gradejax.attribution.common.class_score`:
  drops are linear in the outputs)."""
  b, h, w, c = images.shape
  base = fills.prepare(images, fill, fill_mode, blur_sigma)
  clean = fn(images)[0]
  r = removed.shape[0]
  chunk = max(1, min(chunk, r))
  rem = batching.pad_to_multiple(jnp.asarray(removed), chunk)

  def run(m):  # m [chunk, B, H, W]
    x = fills.apply(images, m, base, fill_mode, blur_sigma)
    out, _ = fn(x.reshape((chunk * b, h, w, c)))
    return clean[None] - out.reshape((chunk, b) + out.shape[1:])

  return chunked_map(run, rem.reshape((-1, chunk) + removed.shape[1:]), unroll).reshape(
      (-1, b) + clean.shape[1:])[:r]
