"""RISE (Petsiuk, Das & Saenko 2018): the score under random masks, averaged per pixel.

Each mask keeps every cell of a coarse ``cells x cells`` grid with probability ``p_keep``, is
upsampled bilinearly to cells of ``ceil(H / cells) x ceil(W / cells)`` pixels and shifted by a
random sub-cell offset (the paper's "upsample to (s + 1) C and crop"), so the masks are smooth
and tile the image at every phase. The image under mask M is ``x * M + fill * (1 - M)``
(:mod:`gradejax.attribution.fills`: a constant, a blur or an inpainting).

The paper's map is ``sum_i f(x . M_i) M_i / (N p)``: every pixel gets the mean score of the
masked copies that kept it. That map carries a large constant (the mean score, ``E[f]``), so
its positive mass is spread everywhere; ``centre=True`` (default) subtracts the mean score
first, ``sum_i (f_i - mean f) M_i / (N p)``, i.e. the covariance of score and mask: zero where a
pixel's presence does not move the score (the same ranking, an honest zero for mass measures).

Masks are drawn inside the jitted loop from ``fold_in(key, chunk index)``, ``chunk`` at a time,
so memory holds one chunk of masks x images, never all N.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gradejax import batching, nets
from gradejax.attribution import fills
from gradejax.attribution.common import as_targets, chunk_scan, class_score, method

Array = jax.Array


def _interp_weights(offset: Array, size: int, cell: int, n_cells: int) -> Array:
  """Bilinear weights [N, size, n_cells + 1] of grid nodes for pixel rows (or columns).

  Pixel p of a mask shifted by ``offset`` (pixels, [N]) sits at grid coordinate
  ``(p + offset) / cell - 0.5`` (node i's centre is at pixel ``(i + 0.5) cell - offset``).
  """
  u = (jnp.arange(size)[None, :] + offset[:, None]) / cell - 0.5  # [N, size]
  u = jnp.clip(u, 0.0, n_cells)
  i0 = jnp.floor(u)
  frac = u - i0
  nodes = jnp.arange(n_cells + 1)[None, None, :]
  return ((nodes == i0[..., None]) * (1 - frac[..., None])
          + (nodes == i0[..., None] + 1) * frac[..., None])


def rise_masks(key: Array, n: int, size: tuple[int, int], cells: int = 8,
               p_keep: float = 0.5) -> Array:
  """``n`` RISE masks in [0, 1]: float32 [n, H, W].

  A ``(cells + 1) x (cells + 1)`` binary grid (one extra node so a shift never runs off it),
  each node kept with probability ``p_keep``, bilinearly upsampled to cells of
  ``ceil(H / cells)`` x ``ceil(W / cells)`` pixels and shifted by a uniform offset in [0, cell).
  """
  h, w = size
  ch, cw = -(-h // cells), -(-w // cells)
  kg, ky, kx = jax.random.split(key, 3)
  grid = jax.random.bernoulli(kg, p_keep, (n, cells + 1, cells + 1)).astype(jnp.float32)
  ry = _interp_weights(jax.random.uniform(ky, (n,), maxval=ch), h, ch, cells)
  rx = _interp_weights(jax.random.uniform(kx, (n,), maxval=cw), w, cw, cells)
  return jnp.einsum('nhi,nij,nwj->nhw', ry, grid, rx)


def _values(out: Array, probabilities: bool) -> Array:
  return jax.nn.softmax(out, axis=-1) if probabilities else out


@method
def rise_all_outputs(fn: nets.ModelFn, images: Array, key: Array, *, n_masks: int = 2000,
                     cells: int = 8, p_keep: float = 0.5,
                     fill: float | Array = fills.DEFAULT_FILL, chunk: int = 50,
                     unroll: int | bool | None = None, fill_mode: str = fills.DEFAULT_MODE,
                     blur_sigma: float = fills.DEFAULT_SIGMA, centre: bool = True,
                     probabilities: bool = False) -> Array:
  """RISE maps of every output unit at once, [B, H, W, K] (outputs units, or class
  probabilities with ``probabilities``): the map is linear in the score, so any linear
  combination of the outputs (:func:`gradejax.attribution.common.class_score`) is the same
  combination of these maps, from one set of forward passes."""
  b, h, w, c = images.shape
  chunk = max(1, min(chunk, n_masks))
  n_chunks = batching.padded_length(n_masks, chunk) // chunk
  base = fills.prepare(images, fill, fill_mode, blur_sigma)
  k = fn(images[:1])[0].shape[-1]

  def body(acc, i):
    masks = rise_masks(jax.random.fold_in(key, i), chunk, (h, w), cells, p_keep)
    x = fills.apply(images, 1.0 - masks, base, fill_mode, blur_sigma)
    out, _ = fn(x.reshape((chunk * b, h, w, c)))
    s = _values(out, probabilities).reshape(chunk, b, -1)  # [chunk, B, K]
    s_m, s_sum, m_sum = acc
    return (s_m + jnp.einsum('nbk,nhw->bhwk', s, masks), s_sum + jnp.sum(s, axis=0),
            m_sum + jnp.sum(masks, axis=0)), None

  init = (jnp.zeros((b, h, w, k)), jnp.zeros((b, k)), jnp.zeros((h, w)))
  (s_m, s_sum, m_sum), _ = chunk_scan(body, init, jnp.arange(n_chunks), unroll)
  n = n_chunks * chunk
  if centre:
    s_m = s_m - (s_sum / n)[:, None, None, :] * m_sum[None, :, :, None]
  return s_m / (n * p_keep)


SCORES = ('logit', 'softmax', 'contrast')


@method
def rise(fn: nets.ModelFn, images: Array, targets: Array, key: Array, *, n_masks: int = 2000,
         cells: int = 8, p_keep: float = 0.5, fill: float | Array = fills.DEFAULT_FILL,
         chunk: int = 50, unroll: int | bool | None = None,
         fill_mode: str = fills.DEFAULT_MODE, blur_sigma: float = fills.DEFAULT_SIGMA,
         centre: bool = True, score: str = 'logit') -> Array:
  """RISE map [B, H, W] in target-score units (see the module docstring).

  ``n_masks`` is rounded up to whole chunks of ``chunk`` masks (each chunk runs
  ``chunk x B`` images through the network); the same masks serve every image of the batch.
  ``score``: 'logit' (the raw target output, as the other methods explain), 'softmax'
  (the class probability, the paper's choice for classifiers) or 'contrast' (the target's
  logit minus the mean of the others': the logit difference for two classes).
  """
  if score not in SCORES:
    raise ValueError(f"score must be one of {', '.join(SCORES)}; got {score!r}")
  t = as_targets(targets, images.shape[0])
  maps = rise_all_outputs.unjitted(fn, images, key, n_masks=n_masks, cells=cells,
                                   p_keep=p_keep, fill=fill, chunk=chunk, unroll=unroll,
                                   fill_mode=fill_mode, blur_sigma=blur_sigma, centre=centre,
                                   probabilities=score == 'softmax')
  return class_score(maps, t, 'contrast' if score == 'contrast' else 'logit')


def masks_used(key: Array, n_masks: int, size: tuple[int, int], cells: int = 8,
               p_keep: float = 0.5, chunk: int = 50) -> Array:
  """The masks :func:`rise` draws with the same arguments, [N', H, W] (N' = whole chunks):
  for references and tests."""
  chunk = max(1, min(chunk, n_masks))
  n_chunks = math.ceil(n_masks / chunk)
  return jnp.concatenate([rise_masks(jax.random.fold_in(key, i), chunk, size, cells, p_keep)
                          for i in range(n_chunks)])
