"""How the optimised image is represented. A :class:`Param` is ``init(key, batch) -> params``
(a pytree, what the optimiser moves) and ``image(params) -> [B, H, W, 3]`` in [0, 1].

Fourier: the image is the inverse real FFT of a spectrum whose coefficients are scaled by
1/frequency, so every frequency starts (and, under Adam, moves) with an equal-energy share
rather than white noise's excess of high frequencies. Colour decorrelation: the 3 channels are
mixed by the square root of the colour covariance of real images, so the optimiser works on
decorrelated colour components.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# Square root (U sqrt(S) of the SVD) of the RGB covariance of face chips, columns scaled so the
# largest has norm 1. Estimated from the 425 aligned 150x150 chips of the demo workbook
# (`python -m gradejax.demo_data`, seed 0, prepared with gradejax.prepare); use
# colour_sqrt(images) to estimate it from a real dataset instead.
FACE_COLOUR_SQRT = np.array([[0.6077, 0.2469, 0.0588],
                             [0.5793, -0.0392, -0.1421],
                             [0.5433, -0.2345, 0.0857]], np.float32)


def colour_sqrt(images: np.ndarray) -> np.ndarray:
  """[N, H, W, 3] images (any range) -> the [3, 3] colour-correlation square root."""
  x = np.asarray(images, np.float64).reshape(-1, 3)
  x = x / max(float(x.max()), 1e-8)
  u, s, _ = np.linalg.svd(np.cov(x.T))
  m = u * np.sqrt(s)
  return (m / np.max(np.linalg.norm(m, axis=0))).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Param:
  init: Callable[[Array, int], Array]
  image: Callable[[Array], Array]
  name: str = ''


def _squash(x: Array, how: str | None) -> Array:
  if how == 'sigmoid':
    return jax.nn.sigmoid(x)
  if how == 'clip':
    return jnp.clip(x + 0.5, 0.0, 1.0)
  if how is None:
    return x
  raise ValueError(f'squash must be sigmoid, clip or None, got {how!r}')


def _colour(x: Array, matrix: np.ndarray | None) -> Array:
  return x if matrix is None else x @ jnp.asarray(matrix).T


def pixel(h: int, w: int, *, sd: float = 0.01, decorrelate: bool = False,
          colour_matrix: np.ndarray | None = None, squash: str | None = 'sigmoid') -> Param:
  """Each pixel a free parameter [B, h, w, 3]."""
  matrix = (FACE_COLOUR_SQRT if colour_matrix is None else colour_matrix) if decorrelate else None
  return Param(lambda key, b: sd * jax.random.normal(key, (b, h, w, 3)),
               lambda p: _squash(_colour(p, matrix), squash), 'pixel')


def frequency_scale(h: int, w: int, decay: float = 1.0) -> np.ndarray:
  """1 / max(|f|, 1/max(h, w))**decay for the rfft2 grid [h, w//2 + 1]."""
  fy = np.fft.fftfreq(h)[:, None]
  fx = np.fft.rfftfreq(w)[None, :]
  f = np.sqrt(fy * fy + fx * fx)
  return (1.0 / np.maximum(f, 1.0 / max(h, w)) ** decay).astype(np.float32)


def fourier(h: int, w: int, *, sd: float = 0.01, decay: float = 1.0, decorrelate: bool = True,
            colour_matrix: np.ndarray | None = None, squash: str | None = 'sigmoid') -> Param:
  """Spectrum parameters [B, h, w//2+1, 3, 2] (real, imaginary) scaled by 1/frequency."""
  scale = jnp.asarray(frequency_scale(h, w, decay))[None, :, :, None]
  matrix = (FACE_COLOUR_SQRT if colour_matrix is None else colour_matrix) if decorrelate else None
  norm = float(np.sqrt(h * w))

  def image(p):
    spec = jax.lax.complex(p[..., 0], p[..., 1]) * scale
    x = jnp.fft.irfft2(spec, s=(h, w), axes=(1, 2)) * norm / 4.0
    return _squash(_colour(x, matrix), squash)

  return Param(lambda key, b: sd * jax.random.normal(key, (b, h, w // 2 + 1, 3, 2)), image,
               'fourier')


def shared(inner: Param, weight: float = 1.0) -> Param:
  """Image b is ``inner``'s image of ``own[b] + weight * common``: parameters ``{'own': [B,...],
  'common': [1,...]}`` in ``inner``'s layout (pixels or spectrum). The common part is pulled by
  every image's objective, so a batch interpolating between two units (objectives.interpolate)
  changes smoothly instead of giving unrelated images."""
  def init(key, b):
    k_own, k_common = jax.random.split(key)
    return {'own': inner.init(k_own, b), 'common': inner.init(k_common, 1)}

  return Param(init, lambda p: inner.image(p['own'] + weight * p['common']),
               f'{inner.name} + shared')


def from_image(images: Array, *, squash: str | None = 'sigmoid') -> Param:
  """Pixel parameters that start at ``images`` (for caricatures and inversion)."""
  x = jnp.clip(jnp.asarray(images, jnp.float32), 1e-3, 1 - 1e-3)
  start = jnp.log(x / (1 - x)) if squash == 'sigmoid' else x - 0.5 if squash == 'clip' else x
  return Param(lambda key, b: jnp.broadcast_to(start, (b,) + start.shape[1:]),
               lambda p: _squash(p, squash), 'image')
