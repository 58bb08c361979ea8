"""Image operations every stage may use (a leaf: imports nothing from gradejax).

One implementation each, so that the insertion baseline of the faithfulness metrics, the
feature-visualisation blur, blurred occlusion fills and blurred-photo baselines agree, and
augmentation and feature visualisation resample with the same bilinear affine map.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy import ndimage

Array = jax.Array


def to_unit_float(images, dtype=np.float32):
  """Pixels as ``dtype`` in [0, 1]: uint8 (0..255) is divided by 255, any other array is only
  cast (already in [0, 1] by the convention of docs/CONTRACTS.md). numpy in, numpy out; a jax
  array (or a tracer) in, jax out."""
  x = images if isinstance(images, jax.Array) else np.asarray(images)
  if x.dtype == np.uint8:
    return x.astype(dtype) / 255.0
  return x.astype(dtype)


def gaussian_kernel(sigma: float) -> np.ndarray:
  """Normalised 1-D Gaussian taps, radius ceil(3 sigma) (at least 1), float32."""
  r = max(1, int(np.ceil(3 * sigma)))
  k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
  return (k / k.sum()).astype(np.float32)


@functools.lru_cache(maxsize=64)
def blur_matrix(n: int, sigma: float, edge: str) -> np.ndarray:
  """The 1-D blur of :func:`gaussian_blur` along an axis of ``n`` pixels as a matrix [n, n]
  (output pixel, input pixel), the edge padding folded in: tap ``t`` of output ``i`` reads
  padded pixel ``i + t - r``, which 'edge' clips into the image and 'reflect' mirrors (without
  repeating the edge pixel). float32, read-only."""
  k = gaussian_kernel(sigma).astype(np.float64)
  r = (len(k) - 1) // 2
  p = np.arange(n)[:, None] + np.arange(len(k))[None, :] - r  # [n, taps] padded positions
  if edge == 'edge':
    p = np.clip(p, 0, n - 1)
  else:  # reflect (r < n): -1 -> 1, n -> n - 2
    p = np.abs(p)
    p = np.where(p > n - 1, 2 * (n - 1) - p, p)
  m = np.zeros((n, n))
  np.add.at(m, (np.repeat(np.arange(n), len(k)), p.ravel()), np.tile(k, n))
  m = m.astype(np.float32)
  m.setflags(write=False)
  return m


def gaussian_blur(images: Array, sigma: float, edge: str = 'reflect') -> Array:
  """Separable Gaussian blur of ``images [B, H, W, C]``; ``sigma`` in pixels (0 = identity).

  ``edge``: 'reflect' (mirror without repeating the edge pixel) or 'edge' (replicate it), as
  ``jnp.pad`` modes. Works under jit (``sigma`` and ``edge`` static).

  Each axis is one matrix product with :func:`blur_matrix` (float32 at full precision, whatever
  the matmul precision around it). The same sums as shifting and adding the padded image once
  per tap, but XLA:CPU differentiated that form ~30-100x slower (16 images of 150 x 150 x 4,
  sigma 5: 0.59 s forward and backward against 0.02 s; benchmarks/RESULTS.md, session 15), and
  the extremal masks' and feature visualisation's gradients run through this blur.
  """
  if sigma <= 0:
    return images
  if edge not in ('reflect', 'edge'):
    raise ValueError(f"edge must be 'reflect' or 'edge', got {edge!r}")
  r = (gaussian_kernel(sigma).shape[0] - 1) // 2
  h, w = images.shape[1], images.shape[2]
  if edge == 'reflect' and r >= min(h, w):
    edge = 'edge'  # reflect padding needs r < size; replicate for tiny images instead
  mh = jnp.asarray(blur_matrix(h, float(sigma), edge), images.dtype)
  mw = jnp.asarray(blur_matrix(w, float(sigma), edge), images.dtype)
  x = jnp.einsum('ij,bjwc->biwc', mh, images, precision=lax.Precision.HIGHEST)
  return jnp.einsum('kw,biwc->bikc', mw, x, precision=lax.Precision.HIGHEST)


def affine_resample(image: Array, matrix: Array, offset: Array,
                    out_hw: tuple[int, int] | None = None) -> Array:
  """One image ``[H, W, C]`` -> ``[h, w, C]`` (``out_hw``, default the input's): output pixel
  ``p = (row, col)`` samples the input at ``matrix @ p + offset`` ([2, 2] and [2], pixel
  units), bilinear, edges replicated. The one resampler of augmentation and of feature
  visualisation's transformation robustness, so a chained transform is interpolated once."""
  h, w = image.shape[:2] if out_hw is None else out_hw
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                            indexing='ij')
  src = jnp.einsum('ij,jhw->ihw', matrix, jnp.stack([rows, cols])) + offset[:, None, None]
  return jnp.stack([ndimage.map_coordinates(image[..., c], [src[0], src[1]], order=1,
                                            mode='nearest') for c in range(image.shape[-1])],
                   axis=-1)
