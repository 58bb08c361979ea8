"""Priors on the image, as objectives to subtract (each scores every image [B]), and the
Gaussian blur used on the image or on the gradient at every step."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gradejax.featurevis.objectives import Objective

Array = jax.Array


def l1(centre: float = 0.5) -> Objective:
  """Mean |x - centre| per image."""
  return Objective(lambda i, o, a: jnp.abs(i - centre).reshape(i.shape[0], -1).mean(1), 'L1')


def l2(centre: float = 0.5) -> Objective:
  """Mean (x - centre)^2 per image."""
  return Objective(lambda i, o, a: jnp.square(i - centre).reshape(i.shape[0], -1).mean(1), 'L2')


def total_variation_of(images: Array) -> Array:
  """[B,H,W,C] -> [B]: mean absolute difference of neighbouring pixels (anisotropic TV)."""
  dy = jnp.abs(images[:, 1:] - images[:, :-1]).reshape(images.shape[0], -1).mean(1)
  dx = jnp.abs(images[:, :, 1:] - images[:, :, :-1]).reshape(images.shape[0], -1).mean(1)
  return dy + dx


def total_variation() -> Objective:
  return Objective(lambda i, o, a: total_variation_of(i), 'TV')


def gaussian_kernel(sigma: float) -> np.ndarray:
  r = max(1, int(np.ceil(3 * sigma)))
  k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
  return (k / k.sum()).astype(np.float32)


def blur(images: Array, sigma: float) -> Array:
  """Separable Gaussian blur of [B,H,W,C] (reflected edges); sigma 0 = identity."""
  if sigma <= 0:
    return images
  k = jnp.asarray(gaussian_kernel(sigma))
  r = (k.shape[0] - 1) // 2
  x = jnp.pad(images, ((0, 0), (r, r), (r, r), (0, 0)), mode='reflect')
  x = sum(k[j] * x[:, j:j + images.shape[1]] for j in range(k.shape[0]))
  return sum(k[j] * x[:, :, j:j + images.shape[2]] for j in range(k.shape[0]))
