"""Starting from real images: caricature (amplify what a layer sees) and feature inversion
(Mahendran & Vedaldi 2015: reconstruct an image from its representation at one layer)."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gradejax import nets
from gradejax.featurevis import param as param_lib
from gradejax.featurevis import regularisers
from gradejax.featurevis.objectives import Objective, _act
from gradejax.featurevis.render import Settings, render

Array = jax.Array


def _flat(a: Array) -> Array:
  return a.reshape(a.shape[0], -1)


def layer_dot(layer: str, target: Array) -> Objective:
  """Per image: <phi(x), phi(x0)> / ||phi(x0)||^2 at ``layer`` (target = phi(x0), [B,...])."""
  t = _flat(jnp.asarray(target))
  norm = jnp.sum(t * t, axis=1) + 1e-8
  return Objective(lambda i, o, a: jnp.sum(_flat(a[layer]) * t, axis=1) / norm, f'dot {layer}')


def representation_distance(layer: str, target: Array) -> Objective:
  """Per image: ||phi(x) - phi(x0)||^2 / ||phi(x0)||^2 at ``layer``."""
  t = _flat(jnp.asarray(target))
  norm = jnp.sum(t * t, axis=1) + 1e-8
  return Objective(lambda i, o, a: jnp.sum(jnp.square(_flat(a[layer]) - t), axis=1) / norm,
                   f'distance {layer}')


def caricature(fn: nets.ModelFn, images: Array, layer: str, key: Array,
               settings: Settings = Settings(steps=128), tv_weight: float = 0.05,
               relu=nn.relu) -> tuple[Array, Array]:
  """Starts at ``images`` [B,H,W,3] in [0,1] and maximises the layer's dot product with the
  original's activation (minus a TV prior). Returns (caricatures, history [steps, B])."""
  target = _act(fn(jnp.asarray(images))[1], layer)
  obj = layer_dot(layer, target) - tv_weight * regularisers.total_variation()
  out, _, hist = render(fn, obj, param_lib.from_image(images), images.shape[0], key, settings,
                        relu)
  return out, hist


def invert(fn: nets.ModelFn, images: Array, layer: str, key: Array,
           settings: Settings = Settings(steps=256), tv_weight: float = 0.05,
           param: param_lib.Param | None = None, relu=nn.relu) -> tuple[Array, Array]:
  """Reconstructs images from their representation at ``layer``, starting from noise
  (Fourier + decorrelated colour by default): minimises the normalised representation distance
  plus ``tv_weight`` * total variation. Returns (reconstructions, history of -loss)."""
  images = jnp.asarray(images)
  target = _act(fn(images)[1], layer)
  h, w = images.shape[1:3]
  param = param or param_lib.fourier(h, w)
  obj = -representation_distance(layer, target) - tv_weight * regularisers.total_variation()
  out, _, hist = render(fn, obj, param, images.shape[0], key, settings, relu)
  return out, hist
