"""Backward rules for the rectifier, as custom-VJP drop-ins for the ``relu`` of a ModelFn.

All three compute ``max(z, 0)`` forward; only the backward pass differs from the gradient:

* ``guided_relu`` (Springenberg et al. 2015): pass the upstream signal only where both the
  input was positive and the signal is positive: ``g * [z > 0] * [g > 0]``.
* ``deconv_relu`` (Zeiler & Fergus 2014): rectify the upstream signal, ignoring the forward
  input: ``max(g, 0)``.
* ``rescale_relu`` (DeepLIFT, Shrikumar et al. 2017): see its docstring.

Max pools keep their ordinary backward pass (the forward argmax 'switches'), as in both papers.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


@jax.custom_vjp
def guided_relu(z: Array) -> Array:
  return jnp.maximum(z, 0)


def _guided_fwd(z):
  return jnp.maximum(z, 0), z


def _guided_bwd(z, g):
  return (jnp.where((z > 0) & (g > 0), g, jnp.zeros_like(g)),)


guided_relu.defvjp(_guided_fwd, _guided_bwd)


@jax.custom_vjp
def deconv_relu(z: Array) -> Array:
  return jnp.maximum(z, 0)


def _deconv_fwd(z):
  return jnp.maximum(z, 0), None


def _deconv_bwd(_, g):
  return (jnp.maximum(g, 0),)


deconv_relu.defvjp(_deconv_fwd, _deconv_bwd)


@jax.custom_vjp
def rescale_relu(z: Array) -> Array:
  """ReLU whose backward pass is DeepLIFT's rescale multiplier, for a stacked batch.

  ``z`` is ``[2B, ...]``: the first half belongs to the inputs, the second half to their
  references, run together through the network (a ReLU sees the same layer's pre-activation
  for both, which is how the rule finds the reference's value without naming the layer).
  Backward, the input half gets ``g * (relu(z) - relu(z_ref)) / (z - z_ref)`` (the ordinary
  derivative where ``z == z_ref``, where the difference is 0 anyway), the reference half its
  ordinary gradient (unused).
  """
  return jnp.maximum(z, 0)


def _rescale_fwd(z):
  return jnp.maximum(z, 0), z


def _rescale_bwd(z, g):
  half = z.shape[0] // 2
  zx, zr = z[:half], z[half:]
  dz = zx - zr
  dy = jnp.maximum(zx, 0) - jnp.maximum(zr, 0)
  same = dz == 0
  m = jnp.where(same, (zx > 0).astype(g.dtype), dy / jnp.where(same, 1, dz))
  return (jnp.concatenate([g[:half] * m, g[half:] * (zr > 0)], axis=0),)


rescale_relu.defvjp(_rescale_fwd, _rescale_bwd)
