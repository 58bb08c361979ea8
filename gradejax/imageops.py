"""Image operations every stage may use (a leaf: imports nothing from gradejax).

One implementation each, so that the insertion baseline of the faithfulness metrics, the
feature-visualisation blur, blurred occlusion fills and blurred-photo baselines agree.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


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
