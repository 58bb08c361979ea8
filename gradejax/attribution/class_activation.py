"""Class activation maps: CAM, Grad-CAM (at any tap) and guided Grad-CAM.

Maps are ``[B, H, W]`` at the input resolution (bilinear upsampling of the ``[B, h, w]`` map at
the tap), in target-score units for CAM and score per unit activation for Grad-CAM.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gradejax import nets
from gradejax.attribution import rules
from gradejax.attribution.common import as_targets, input_gradient, method, target_score, upsample

Array = jax.Array


def _feature_shape(fn: nets.ModelFn, images: Array, layer: str) -> tuple[int, ...]:
  shapes = nets.activation_shapes(fn, images)
  if layer not in shapes:
    raise ValueError(f'no tap named {layer!r}; the network taps {sorted(shapes)}')
  if len(shapes[layer]) != 4:
    raise ValueError(f'tap {layer!r} has shape {shapes[layer]}; class activation maps need a '
                     f'spatial feature map [B, h, w, C]')
  return shapes[layer]


@method
def cam(fn: nets.ModelFn, images: Array, targets: Array, weights: Array, *, layer: str,
        upsampled: bool = True) -> Array:
  """Zhou et al. 2016: ``sum_c W[c, k] A[h, w, c]`` for a global-average-pool + linear head.

  ``layer`` names the tap holding the feature map A ``[B, h, w, C]`` that is average-pooled
  and ``weights`` W ``[C, K]`` the linear map from the pooled features to the outputs (see
  :func:`linear_head_weights`). Signed; ``[B, H, W]`` (or ``[B, h, w]`` if not upsampled).
  """
  _feature_shape(fn, images, layer)
  t = as_targets(targets, images.shape[0])
  _, acts = fn(images)
  m = jnp.einsum('bhwc,cb->bhw', acts[layer], weights[:, t])
  return upsample(m, images.shape[1:3]) if upsampled else m


def grad_cam_maps(fn: nets.ModelFn, images: Array, targets: Array, layer: str,
                  relu: nets.Relu = nn.relu, rectify: bool = True) -> Array:
  """Grad-CAM at the tap's resolution, [B, h, w] (traceable helper, not jitted)."""
  shape = _feature_shape(fn, images, layer)
  grad, (_, acts) = jax.grad(
      lambda p: target_score(fn, images, targets, relu, {layer: p}), has_aux=True)(
          jnp.zeros(shape, images.dtype))
  alpha = jnp.mean(grad, axis=(1, 2))  # [B, C]: channel importance
  m = jnp.einsum('bhwc,bc->bhw', acts[layer], alpha)
  return jnp.maximum(m, 0) if rectify else m


@method
def grad_cam(fn: nets.ModelFn, images: Array, targets: Array, *, layer: str,
             upsampled: bool = True, rectify: bool = True) -> Array:
  """Selvaraju et al. 2017: ``relu(sum_c mean_hw(dS/dA_c) A_c)`` at tap ``layer``, [B, H, W].

  The gradient with respect to the activation is taken as the gradient with respect to a zero
  perturbation added at the tap (nets.tap), so any tap works, not only the last conv layer.
  """
  t = as_targets(targets, images.shape[0])
  m = grad_cam_maps(fn, images, t, layer, rectify=rectify)
  return upsample(m, images.shape[1:3]) if upsampled else m


@method
def guided_grad_cam(fn: nets.ModelFn, images: Array, targets: Array, *, layer: str) -> Array:
  """Guided backpropagation [B, H, W, C] times the upsampled Grad-CAM map [B, H, W, 1]."""
  t = as_targets(targets, images.shape[0])
  coarse = upsample(grad_cam_maps(fn, images, t, layer), images.shape[1:3])
  return input_gradient(fn, images, t, rules.guided_relu) * coarse[..., None]


def linear_head_weights(fn: nets.ModelFn, images: Array, pooled: str, *, key: Array,
                        tol: float = 1e-4) -> Array:
  """The ``[C, K]`` matrix W with ``outputs = pooled @ W + b``, checked to be linear.

  Taken as the Jacobian of the outputs with respect to a perturbation at the tap ``pooled``
  ``[B, C]`` (the global-average-pooled features), at the first image and again after a random
  shift of its pooled features (``key``): if the two differ by more than ``tol`` (relative),
  the head is not linear and CAM does not apply (ValueError; use Grad-CAM).
  """
  x = jnp.asarray(images[:1])
  shapes = nets.activation_shapes(fn, x)
  if pooled not in shapes or len(shapes[pooled]) != 2:
    raise ValueError(f'CAM needs a pooled-feature tap [B, C]; {pooled!r} is '
                     f'{shapes.get(pooled, "absent")} (taps: {sorted(shapes)})')

  def jac(p):
    return jax.jacrev(lambda q: fn(x, perturbations={pooled: q})[0][0])(p)[:, 0, :]  # [K, C]

  zero = jnp.zeros(shapes[pooled], x.dtype)
  _, acts = fn(x)
  shift = jax.random.normal(key, zero.shape) * (jnp.std(acts[pooled]) + 1.0)
  j0, j1 = np.asarray(jac(zero)), np.asarray(jac(shift))
  if not np.allclose(j0, j1, rtol=tol, atol=tol * (np.abs(j0).max() + 1e-12)):
    raise ValueError(f'the outputs are not a linear function of tap {pooled!r} (Jacobian '
                     f'changes by {np.abs(j0 - j1).max():.3g}): CAM needs a global-average-pool '
                     f'+ linear head; use grad_cam instead')
  return jnp.asarray(j0.T)
