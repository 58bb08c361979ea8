"""Image operations every stage may use (a leaf: imports nothing from gradejax).

One implementation each, so that the insertion baseline of the faithfulness metrics, the
feature-visualisation blur, blurred occlusion fills and blurred-photo baselines agree, and
augmentation and feature visualisation resample with the same bilinear affine map.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
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


def gaussian_blur(images: Array, sigma: float, edge: str = 'reflect') -> Array:
  """Separable Gaussian blur of ``images [B, H, W, C]``; ``sigma`` in pixels (0 = identity).

  ``edge``: 'reflect' (mirror without repeating the edge pixel) or 'edge' (replicate it), as
  ``jnp.pad`` modes. Works under jit (``sigma`` and ``edge`` static).
  """
  if sigma <= 0:
    return images
  if edge not in ('reflect', 'edge'):
    raise ValueError(f"edge must be 'reflect' or 'edge', got {edge!r}")
  k = jnp.asarray(gaussian_kernel(sigma), images.dtype)
  r = (k.shape[0] - 1) // 2
  h, w = images.shape[1], images.shape[2]
  if edge == 'reflect' and r >= min(h, w):
    edge = 'edge'  # reflect padding needs r < size; replicate for tiny images instead
  x = jnp.pad(images, ((0, 0), (r, r), (r, r), (0, 0)), mode=edge)
  x = sum(k[j] * x[:, j:j + h] for j in range(k.shape[0]))
  return sum(k[j] * x[:, :, j:j + w] for j in range(k.shape[0]))


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
