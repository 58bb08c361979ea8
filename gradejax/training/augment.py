"""Photometric and geometric augmentation of face chips: pure, jit-able, explicit keys.

Every function takes one image ``[H, W, 3]`` float32 in [0, 1] and returns the same shape, still
in [0, 1]; :func:`augment_batch` draws independently per image with ``vmap``. Geometry is one
bilinear resample (flip, rotation, scale and translation folded into one affine map), so a chip
is interpolated once, not once per transform.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gradejax import imageops

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class AugmentParams:
  """Ranges of the random draws (0 switches a transform off). Hashable: a static jit argument."""
  flip: bool = True
  max_rotation_deg: float = 8.0
  max_scale: float = 0.05  # zoom factor drawn in [1 - s, 1 + s]
  max_translation: float = 0.04  # shift, as a fraction of the side
  brightness: float = 0.1  # additive, in [0, 1] units
  contrast: float = 0.1  # factor in [1 - c, 1 + c] around the image mean
  saturation: float = 0.1  # factor in [1 - s, 1 + s] around the grey level


def affine_resample(image: Array, angle: Array, scale: Array, shift: Array, flip: Array
                    ) -> Array:
  """Rotates by ``angle`` (radians), zooms by ``scale``, shifts by ``shift`` ([2] pixels, y x)
  and mirrors left-right when ``flip``: one bilinear resample about the centre, edges repeated.
  """
  h, w, _ = image.shape
  centre = jnp.array([(h - 1) / 2.0, (w - 1) / 2.0])
  # Output pixel -> source pixel is the inverse map: un-rotate and un-zoom (then mirror x).
  c, s = jnp.cos(angle), jnp.sin(angle)
  matrix = jnp.array([[c, -s], [s, c]]) / scale
  matrix = matrix * jnp.where(flip, jnp.array([[1.0], [-1.0]]), 1.0)
  offset = centre - matrix @ (centre + shift)
  return imageops.affine_resample(image, matrix, offset)


def colour_jitter(image: Array, brightness: Array, contrast: Array, saturation: Array) -> Array:
  """Adds ``brightness``, scales contrast about the mean and saturation about the grey level."""
  x = image + brightness
  x = (x - jnp.mean(x)) * contrast + jnp.mean(x)
  grey = jnp.mean(x, axis=-1, keepdims=True)
  x = (x - grey) * saturation + grey
  return jnp.clip(x, 0.0, 1.0)


def augment(key: Array, image: Array, p: AugmentParams) -> Array:
  """One random view of ``image [H, W, 3]`` in [0, 1] -> ``[H, W, 3]`` in [0, 1]."""
  k = jax.random.split(key, 7)
  u = lambda i, r: jax.random.uniform(k[i], (), minval=-r, maxval=r)
  flip = jax.random.bernoulli(k[0]) & p.flip
  angle = jnp.deg2rad(u(1, p.max_rotation_deg))
  scale = 1.0 + u(2, p.max_scale)
  shift = jax.random.uniform(k[3], (2,), minval=-1.0, maxval=1.0) * p.max_translation * jnp.array(
      image.shape[:2], jnp.float32)
  x = affine_resample(image, angle, scale, shift, flip)
  return colour_jitter(x, u(4, p.brightness), 1.0 + u(5, p.contrast), 1.0 + u(6, p.saturation))


def augment_batch(key: Array, images: Array, p: AugmentParams) -> Array:
  """Independent views of ``images [B, H, W, 3]`` (one key per image from ``key``)."""
  keys = jax.random.split(key, images.shape[0])
  return jax.vmap(augment, in_axes=(0, 0, None))(keys, images, p)


def view_keys(key: Array, view: Array, index: Array) -> Array:
  """Key of augmented view ``view`` of example ``index`` (int [B] each): the same pixels every
  time they are asked for, whether cached or recomputed."""
  return jax.vmap(lambda v, i: jax.random.fold_in(jax.random.fold_in(key, v), i))(view, index)


def views(key: Array, images: Array, view: Array, index: Array, p: AugmentParams) -> Array:
  """``images [B,H,W,3]`` of examples ``index`` as view ``view`` (0 = the image unchanged)."""
  out = jax.vmap(augment, in_axes=(0, 0, None))(view_keys(key, view, index), images, p)
  return jnp.where((view > 0)[:, None, None, None], out, images)
