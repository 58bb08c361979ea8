"""Transformation robustness: each step every image gets its own random pad-jitter-scale-rotate,
drawn from an explicit key, applied as ONE bilinear affine resample (no blur from chained
resampling) and cropped back to the input size. Shapes and the [0, 1] range are kept."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gradejax import imageops

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Robustness:
  """pad: px of padding (reflect) before the affine; jitter: max shift in px; scale: (lo, hi)
  zoom range; rotate: max |angle| in degrees. All zero = identity."""
  pad: int = 0
  jitter: int = 0
  scale: tuple[float, float] = (1.0, 1.0)
  rotate: float = 0.0

  @property
  def identity(self) -> bool:
    return self.pad == 0 and self.jitter == 0 and self.scale == (1.0, 1.0) and self.rotate == 0


def pad(images: Array, px: int) -> Array:
  """[B,H,W,C] -> [B,H+2px,W+2px,C], reflected borders (no flat frame for the net to notice)."""
  if px == 0:
    return images
  return jnp.pad(images, ((0, 0), (px, px), (px, px), (0, 0)), mode='reflect')


def random_affine(key: Array, t: Robustness, in_hw: tuple[int, int], out_hw: tuple[int, int]
                  ) -> tuple[Array, Array]:
  """A random (matrix, offset) mapping output pixels to input pixels about the centres."""
  k1, k2, k3 = jax.random.split(key, 3)
  shift = jax.random.randint(k1, (2,), -t.jitter, t.jitter + 1).astype(jnp.float32)
  zoom = jax.random.uniform(k2, (), minval=t.scale[0], maxval=t.scale[1])
  angle = jnp.deg2rad(jax.random.uniform(k3, (), minval=-t.rotate, maxval=t.rotate))
  c, s = jnp.cos(angle), jnp.sin(angle)
  matrix = jnp.array([[c, -s], [s, c]]) / zoom
  centre_in = (jnp.array(in_hw, jnp.float32) - 1) / 2
  centre_out = (jnp.array(out_hw, jnp.float32) - 1) / 2
  return matrix, centre_in + shift - matrix @ centre_out


def apply(key: Array, images: Array, t: Robustness) -> Array:
  """[B,H,W,C] -> [B,H,W,C]: image b draws from ``fold_in(key, b)`` (independent of B, so
  padding a batch for sharding changes no image's draw)."""
  if t.identity:
    return images
  out_hw = images.shape[1:3]
  padded = pad(images, t.pad)
  in_hw = padded.shape[1:3]
  keys = jax.vmap(lambda b: jax.random.fold_in(key, b))(jnp.arange(images.shape[0]))

  def one(k, img):
    m, o = random_affine(k, t, in_hw, out_hw)
    return imageops.affine_resample(img, m, o, out_hw)

  return jax.vmap(one)(keys, padded)
