"""What a removed region is replaced with: one implementation for every perturbation method
(occlusion, RISE, superpixel ablation, the causal check, ROAD).

A grey or black patch is itself an object to the network (a dark blob reads as an eye or a hole
to a face network), so "the score dropped" can mean "the network saw a new object" rather than
"the network needed what was there". Three fills, all traceable (``mode`` and ``sigma`` static):

* ``'value'``: a constant (or any array broadcastable to one image ``[H, W, C]``), the classic
  occluder (Zeiler & Fergus 2014).
* ``'blur'``: the image blurred with a Gaussian of ``sigma`` pixels
  (:func:`gradejax.imageops.gaussian_blur`, replicated edges; Fong & Vedaldi 2017's blur
  perturbation): removes detail, keeps the local colour.
* ``'inpaint'``: normalised convolution (Knutsson & Westin 1993) from the pixels *outside* the
  removed region: ``blur(x * keep) / blur(keep)``; a small bright sticker on a cheek becomes
  cheek-coloured skin, because the removed pixels themselves carry no weight. Pixels farther
  than ~3 sigma from any kept pixel fall back to the blurred image.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gradejax import imageops

Array = jax.Array
MODES = ('value', 'blur', 'inpaint')
# The defaults of every perturbation method's ``fill`` / ``fill_mode`` / ``blur_sigma``, written
# once here. The constant fill is mid-grey (near the mean pixel, in [0, 1]): black, captum's
# default baseline, reads as a dark object to a face network.
DEFAULT_FILL = 0.5
DEFAULT_MODE = 'value'
DEFAULT_SIGMA = 5.0  # pixels


def check_mode(mode: str) -> str:
  if mode not in MODES:
    raise ValueError(f'fill_mode must be one of {", ".join(MODES)}; got {mode!r}')
  return mode


def prepare(images: Array, fill: float | Array, mode: str, sigma: float) -> Array:
  """The part of the fill that does not depend on the mask, computed once per batch:
  the constant broadcast to ``[H, W, C]`` ('value') or the blurred images ``[B, H, W, C]``
  ('blur', and 'inpaint''s fallback)."""
  check_mode(mode)
  if mode == 'value':
    return jnp.broadcast_to(jnp.asarray(fill, images.dtype), images.shape[1:])
  return imageops.gaussian_blur(images, sigma, edge='edge')


def apply(images: Array, removed: Array, base: Array, mode: str, sigma: float) -> Array:
  """Images with the ``removed`` pixels replaced: ``[N, B, H, W, C]``.

  ``images`` [B, H, W, C]; ``removed`` [N, H, W] (the same N masks for every image) or
  [N, B, H, W], in [0, 1] (soft masks blend); ``base`` from :func:`prepare` with the same
  ``mode``/``sigma``.
  """
  m = removed[:, None] if removed.ndim == 3 else removed
  m = m[..., None]  # [N, B or 1, H, W, 1]
  x = images[None]
  if mode == 'inpaint':
    n, b = m.shape[0], max(m.shape[1], images.shape[0])
    keep = jnp.broadcast_to(1.0 - m, (n, b) + images.shape[1:3] + (1,))
    xk = (x * keep).reshape((n * b,) + images.shape[1:])
    stack = jnp.concatenate([xk, keep.reshape((n * b,) + images.shape[1:3] + (1,))], axis=-1)
    blurred = imageops.gaussian_blur(stack, sigma, edge='edge').reshape(
        (n, b) + images.shape[1:3] + (images.shape[3] + 1,))
    num, den = blurred[..., :-1], blurred[..., -1:]
    fill = jnp.where(den > 1e-3, num / jnp.maximum(den, 1e-3), base[None])
  else:
    fill = base[None] if base.ndim == images.ndim else base
  return x * (1 - m) + fill * m
