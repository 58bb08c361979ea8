"""Starting from real images: caricature (amplify what a layer sees), feature accentuation (Hamblin
et al. 2024: push one unit up from a real photo while staying near it, to show what in *that*
photo drives the unit) and feature inversion (Mahendran & Vedaldi 2015: reconstruct an image
from its representation at one layer)."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gradejax import nets
from gradejax.attribution.battery.maps import default_layer
from gradejax.optvis import param as param_lib
from gradejax.optvis import regularisers, transform
from gradejax.optvis.objectives import Objective, _act, channel_batch
from gradejax.optvis.render import Settings, render

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


def accentuate(fn: nets.ModelFn, images: Array, layer: str, units: Sequence[int], key: Array,
               settings: Settings = Settings(steps=64), keep_layer: str | None = None,
               keep_weight: float = 1.0, tv_weight: float = 0.05, relu=nn.relu
               ) -> tuple[Array, Array]:
  """Feature accentuation: image ``b`` starts at ``images[b]`` ([B,H,W,3] in [0,1], pixel
  parameters) and ascends unit ``units[b]`` of ``layer`` (channel mean for spatial taps),
  minus ``keep_weight`` x the normalised representation distance to the original at
  ``keep_layer`` (an early layer: the photo stays recognisable; None: no such term) and a TV
  prior. Returns (accentuated images, history [steps, B] of the whole objective)."""
  images = jnp.asarray(images)
  obj = channel_batch(layer, [int(u) for u in units])
  if keep_layer is not None and keep_weight > 0:
    obj = obj - keep_weight * representation_distance(keep_layer,
                                                      _act(fn(images)[1], keep_layer))
  obj = obj - tv_weight * regularisers.total_variation()
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


def accentuations(fn, data: np.ndarray, layer: str, units: np.ndarray, top: dict, key,
                  steps: int, keep_weight: float, lr: float = 0.01, grad_blur: float = 1.5
                  ) -> dict:
  """Per unit, its most activating chip, that chip accentuated for the unit and its
  caricature (at the last spatial tap with a map of at least 7 px, as Grad-CAM's default).
  Pixel parameters drift into high-frequency patterns quickly: a small learning rate and a
  blurred gradient keep the change to what the unit needs (measured on the demo: lr 0.05
  without blur turned both chips into texture even at keep_weight 100)."""
  chips = data[top['index'][:, 0]].astype(np.float32) / 255.0
  order = [k for k in nets.tap_order(fn, chips[:1])
           if len(nets.activation_shapes(fn, chips[:1])[k]) == 4]
  keep = order[0] if order else None  # the earliest map: keeps the photo recognisable
  car_layer = default_layer(fn, chips[:1]) if order else layer
  settings = Settings(steps=steps, learning_rate=lr, grad_blur=grad_blur,
                      robustness=transform.Robustness(pad=2, jitter=2, scale=(1.0, 1.0),
                                                      rotate=0.0))
  k1, k2 = jax.random.split(key)
  acc, hist = accentuate(fn, chips, layer, units, k1, settings, keep_layer=keep,
                         keep_weight=keep_weight)
  car, _ = caricature(fn, chips, car_layer, k2, settings)
  before = np.asarray(channel_batch(layer, units)(chips, *fn(chips)))
  after = np.asarray(channel_batch(layer, units)(acc, *fn(acc)))
  return {'original': chips, 'accentuated': np.asarray(acc), 'caricature': np.asarray(car),
          'history': np.asarray(hist), 'before': before, 'after': after,
          'note': f'Accentuation: {steps} Adam steps (lr {lr:g}, gradient blurred at '
                  f'{grad_blur:g} px) from the chip, objective = the unit minus '
                  f'{keep_weight:g} x its distance to the original at {keep} (and a TV prior); '
                  f'caricature: the chip\'s own {car_layer} activation amplified.'}
