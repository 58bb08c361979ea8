"""Superpixel ablation: what the score loses when whole image segments are removed.

Segments are SLIC superpixels (Achanta et al. 2012, ``skimage.segmentation.slic``), computed on
the host once per image (:func:`slic_segments`); everything that runs the network is jitted and
batched over images and over ablations, ``chunk`` ablations x B images per call.

Three scores per segment, painted back onto its pixels ([B, H, W]):

* ``'removal'``: the target-score drop when that one segment is removed (occlusion with
  segment-shaped occluders).
* ``'kernel_shap'``: KernelSHAP (Lundberg & Lee 2017): Shapley values of the segments, by a
  weighted least-squares fit of the score on random coalitions (segments kept) under the Shapley
  kernel, constrained so the values add up to ``f(x) - f(all removed)``. For a model linear in
  the segments' presence the fit is exact: each segment gets its own contribution.
* ``'lime'``: LIME (Ribeiro et al. 2016) for images: coalitions kept with probability 1/2,
  weighted by ``exp(-d^2 / width^2)`` of the cosine distance d to the full image, ridge
  regression with a free intercept.

Images may have different numbers of segments (SLIC's count is approximate): labels are padded
to the batch's largest count S; a segment absent from an image covers no pixel and gets 0.
KernelSHAP draws coalition sizes for S segments; for an image with S_b < S segments each sample
is re-weighted by (Shapley kernel for S_b) / (probability of its size among that image's
segments), so its fit is still KernelSHAP's for S_b players.
"""
from __future__ import annotations

import inspect

import numpy as np
import jax
import jax.numpy as jnp
from jax import lax
from scipy import special

from gradejax import batching, imageops, nets
from gradejax.attribution import fills
from gradejax.attribution.common import as_targets, chunked_map, method, options_of, pick

Array = jax.Array
SCORERS = ('removal', 'kernel_shap', 'lime')
SLIC_SEGMENTS = 64  # SLIC's target count (it returns roughly this many)
SLIC_COMPACTNESS = 10.0  # scikit-image's default: colour vs space trade-off


def slic_segments(images: np.ndarray, n_segments: int = SLIC_SEGMENTS,
                  compactness: float = SLIC_COMPACTNESS, sigma: float = 1.0) -> np.ndarray:
  """SLIC labels per image, int32 [B, H, W], consecutive from 0 in each image.

  ``images`` [B, H, W, 3] float in [0, 1] or uint8. Runs on the host (numpy/scikit-image),
  once per image: segmentation has no gradient and is not the expensive part.
  """
  from skimage.segmentation import slic  # the one dependency only this function needs
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f'slic_segments needs images [B, H, W, C], got shape {images.shape}')
  out = []
  for im in images:
    im = imageops.to_unit_float(im, np.float64)
    seg = slic(im, n_segments=n_segments, compactness=compactness, sigma=sigma, start_label=0,
               channel_axis=-1 if im.shape[-1] > 1 else None)
    _, seg = np.unique(seg, return_inverse=True)  # consecutive labels
    out.append(seg.reshape(im.shape[:2]).astype(np.int32))
  return np.stack(out)


def grid_segments(batch: int, size: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
  """Rectangular cells as segment labels, int32 [B, H, W] (row-major label order): a
  segmentation with a known answer, for tests and as a content-free alternative to SLIC."""
  h, w = size
  iy = np.minimum(np.arange(h) * cells[0] // h, cells[0] - 1)
  ix = np.minimum(np.arange(w) * cells[1] // w, cells[1] - 1)
  return np.broadcast_to((iy[:, None] * cells[1] + ix[None, :]).astype(np.int32),
                         (batch, h, w)).copy()


def _counts(segments: Array, n_seg: int) -> Array:
  """Segments present per image, [B] (labels are consecutive from 0)."""
  return jnp.max(segments.reshape(segments.shape[0], -1), axis=1) + 1


def _removed_masks(z: Array, onehot: Array) -> Array:
  """Coalitions z [N, S] (1 = segment kept) -> removed-pixel masks [N, B, H, W]."""
  return 1.0 - jnp.einsum('ns,bhws->nbhw', z, onehot)


def _scores(fn, images, t, onehot, z, base, fill_mode, blur_sigma, chunk, unroll):
  """Target score of every image under every coalition: [N, B] (N padded to chunks)."""
  b, h, w, c = images.shape
  n = z.shape[0]
  chunk = max(1, min(chunk, n))
  zp = batching.pad_to_multiple(z, chunk).reshape(-1, chunk, z.shape[1])

  def run(zc):
    x = fills.apply(images, _removed_masks(zc, onehot), base, fill_mode, blur_sigma)
    out, _ = fn(x.reshape((chunk * b, h, w, c)))
    return pick(out, jnp.tile(t, chunk)).reshape(chunk, b)

  return chunked_map(run, zp, unroll).reshape(-1, b)[:n]


def shap_size_weights(n_seg: int, counts: np.ndarray) -> np.ndarray:
  """Per-sample weight by the number of an image's segments kept, float64 [B, S + 1].

  Sizes k = 1 .. S-1 are drawn with probability q(k) ~ (S-1) / (k (S-k)) and a uniform subset
  of that size; an image with S_b segments then keeps k_b of its own with probability
  ``q_b(k_b) = sum_k q(k) Hyp(k_b; S, S_b, k)``. Its Shapley kernel gives size k_b the total
  weight ``(S_b-1) / (k_b (S_b-k_b))``; the ratio is the sample's weight (1 when S_b = S).
  k_b = 0 and k_b = S_b get 0: the constraint fixes those two coalitions exactly.
  """
  s = n_seg
  k = np.arange(1, s)
  q = (s - 1) / (k * (s - k))
  q = q / q.sum()
  out = np.zeros((len(counts), s + 1))
  for i, sb in enumerate(np.asarray(counts, int)):
    kb = np.arange(0, sb + 1)
    # hypergeometric P(k_b | k): C(S_b, k_b) C(S - S_b, k - k_b) / C(S, k)
    hyp = (special.comb(sb, kb[:, None]) * special.comb(s - sb, k[None, :] - kb[:, None])
           / special.comb(s, k[None, :]))
    qb = hyp @ q
    inner = (kb > 0) & (kb < sb) & (qb > 0)
    kernel = np.where(inner, (sb - 1) / np.maximum(kb * (sb - kb), 1), 0.0)
    kernel = kernel / max(kernel.sum(), 1e-300)
    out[i, :sb + 1] = np.where(inner, kernel / np.where(inner, qb, 1.0), 0.0)
  return out


def _draw_shap(key: Array, n: int, n_seg: int) -> Array:
  """KernelSHAP coalitions, float32 [2 ceil(n/2), S]: size ~ q(k) on 1..S-1, then a uniform
  subset, each followed by its complement (paired sampling, as the shap package does: the
  kernel is symmetric in k <-> S-k, and the pairs cancel much of the sampling noise)."""
  m = -(-n // 2)
  k = jnp.arange(1, n_seg)
  logits = jnp.log((n_seg - 1) / (k * (n_seg - k)))
  ks, kp = jax.random.split(key)
  size = jax.random.categorical(ks, logits, shape=(m,)) + 1
  order = jnp.argsort(jax.random.uniform(kp, (m, n_seg)), axis=1)
  rank = jnp.argsort(order, axis=1)
  z = (rank < size[:, None]).astype(jnp.float32)
  return jnp.stack([z, 1.0 - z], axis=1).reshape(2 * m, n_seg)


def _fit_shap(z, y, f_none, f_all, valid, weights):
  """Constrained WLS for one image: z [N, S], y [N], valid [S] bool, weights [N] -> phi [S].

  min sum_i w_i (y_i - f_none - z_i . phi)^2 subject to sum_valid phi = f_all - f_none, via the
  KKT system; absent segments are pinned to 0 (identity rows).
  """
  zv = z * valid[None]
  a = (zv * weights[:, None]).T @ zv
  a = a + jnp.diag(jnp.where(valid, 1e-9 * (jnp.trace(a) / a.shape[0] + 1e-12), 1.0))
  rhs = (zv * weights[:, None]).T @ (y - f_none)
  ones = valid.astype(a.dtype)
  s = a.shape[0]
  kkt = jnp.zeros((s + 1, s + 1), a.dtype).at[:s, :s].set(a).at[:s, s].set(ones).at[s, :s].set(ones)
  sol = jnp.linalg.solve(kkt, jnp.concatenate([rhs, jnp.array([f_all - f_none])]))
  return sol[:s] * valid


def _fit_lime(z, y, valid, weights, ridge):
  """Weighted ridge regression with a free (unpenalised) intercept: phi [S]."""
  zv = jnp.concatenate([z * valid[None], jnp.ones((z.shape[0], 1))], axis=1)
  a = (zv * weights[:, None]).T @ zv
  pen = jnp.concatenate([jnp.where(valid, ridge, 1.0), jnp.zeros((1,))])
  a = a + jnp.diag(pen + 1e-9)
  sol = jnp.linalg.solve(a, (zv * weights[:, None]).T @ y)
  return sol[:-1] * valid


@method
def segment_scores(fn: nets.ModelFn, images: Array, targets: Array, segments: Array,
                   key: Array | None = None, shap_weights: Array | None = None, *,
                   n_seg: int, scorer: str = 'removal', n_samples: int = 256,
                   fill: float | Array = fills.DEFAULT_FILL, chunk: int = 32,
                   unroll: int | bool | None = None, fill_mode: str = fills.DEFAULT_MODE,
                   blur_sigma: float = fills.DEFAULT_SIGMA,
                   kernel_width: float | Array = 0.25, ridge: float | Array = 1.0) -> Array:
  """One value per segment, float [B, S] (target-score units); see the module docstring.

  ``segments`` int [B, H, W] labels in 0..n_seg-1; ``key`` draws the coalitions of
  'kernel_shap' / 'lime' (``n_samples`` each, shared by the images); ``shap_weights``
  [B, n_seg + 1] from :func:`shap_size_weights` (computed by :func:`superpixel_ablation`).
  """
  if scorer not in SCORERS:
    raise ValueError(f'scorer must be one of {", ".join(SCORERS)}; got {scorer!r}')
  b = images.shape[0]
  t = as_targets(targets, b)
  onehot = jax.nn.one_hot(segments, n_seg, dtype=images.dtype)  # [B, H, W, S]
  valid = jnp.arange(n_seg)[None] < _counts(segments, n_seg)[:, None]  # [B, S]
  base = fills.prepare(images, fill, fill_mode, blur_sigma)
  score = lambda z: _scores(fn, images, t, onehot, z, base, fill_mode, blur_sigma, chunk, unroll)
  ends = score(jnp.stack([jnp.ones(n_seg), jnp.zeros(n_seg)]))  # [2, B]: all kept, none kept
  f_all, f_none = ends[0], ends[1]
  if scorer == 'removal':
    drops = f_all[None] - score(1.0 - jnp.eye(n_seg))  # [S, B]
    return drops.T * valid
  if key is None:
    raise ValueError(f"segment_scores(scorer={scorer!r}) needs key=jax.random.key(seed)")
  if scorer == 'kernel_shap':
    z = _draw_shap(key, n_samples, n_seg)
    y = score(z)  # [N, B]
    kept = jnp.einsum('ns,bs->bn', z, valid.astype(z.dtype)).astype(jnp.int32)  # [B, N]
    w = jnp.take_along_axis(shap_weights, kept, axis=1)  # [B, N]
    return jax.vmap(_fit_shap, in_axes=(None, 1, 0, 0, 0, 0))(z, y, f_none, f_all, valid, w)
  z = jax.random.bernoulli(key, 0.5, (n_samples, n_seg)).astype(images.dtype)
  y = score(z)
  zb = z[None] * valid[:, None]  # [B, N, S]
  kept = jnp.sum(zb, axis=2)
  d = 1.0 - kept / jnp.sqrt(jnp.maximum(kept, 1e-9) * _counts(segments, n_seg)[:, None])
  w = jnp.exp(-(d ** 2) / kernel_width ** 2)  # [B, N]
  return jax.vmap(_fit_lime, in_axes=(None, 1, 0, 0, None))(z, y, valid, w, ridge)


def segment_scores_defaults() -> dict:
  """The defaults of :func:`segment_scores`'s options (read from its signature)."""
  return {n: p.default for n, p in options_of(segment_scores).items()
          if p.default is not inspect.Parameter.empty}


def paint(values: Array, segments: Array) -> Array:
  """Per-segment values [B, S] -> per-pixel map [B, H, W]."""
  return jnp.take_along_axis(values, segments.reshape(segments.shape[0], -1), axis=1).reshape(
      segments.shape)


def superpixel_ablation(fn: nets.ModelFn, images: Array, targets: Array, *,
                        key: Array | None = None, segments: np.ndarray | None = None,
                        n_segments: int = SLIC_SEGMENTS, compactness: float = SLIC_COMPACTNESS,
                        **options) -> Array:
  """Superpixel-ablation map [B, H, W]: SLIC on the host (unless ``segments`` are given),
  then :func:`segment_scores` (jitted), painted back onto each segment's pixels.

  ``options`` go to :func:`segment_scores` (scorer, n_samples, fill, fill_mode, blur_sigma,
  chunk, unroll, kernel_width, ridge, precision; its defaults).
  """
  scorer = options.pop('scorer', segment_scores_defaults()['scorer'])
  if segments is None:
    segments = slic_segments(np.asarray(images), n_segments, compactness)
  segments = np.asarray(segments, np.int32)
  n_seg = int(segments.max()) + 1
  weights = None
  if n_seg < 2:  # one player: its Shapley value (and LIME's fit) is its removal drop
    scorer = 'removal'
  if scorer == 'kernel_shap':
    counts = segments.reshape(len(segments), -1).max(axis=1) + 1
    weights = jnp.asarray(shap_size_weights(n_seg, counts), jnp.float32)
  seg = jnp.asarray(segments)
  values = segment_scores(fn, images, targets, seg, key, weights, n_seg=n_seg, scorer=scorer,
                          **options)
  return paint(values, seg)
