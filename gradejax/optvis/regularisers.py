"""Priors on the image, as objectives to subtract (each scores every image [B]), and the
Gaussian blur used on the image or on the gradient at every step."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gradejax import imageops
from gradejax.optvis.objectives import Objective

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


def blur(images: Array, sigma: float) -> Array:
  """Separable Gaussian blur of [B,H,W,C] (reflected edges); sigma 0 = identity."""
  return imageops.gaussian_blur(images, sigma, edge='reflect')
