"""Modified-backward methods: guided backpropagation and the deconvnet.

Both are the input gradient of the target score with the network's rectifier swapped for a
custom-VJP rule (:mod:`gradejax.attribution.rules`); params are untouched. Output
``[B, H, W, C]`` like ``images``.
"""
from __future__ import annotations

import jax

from gradejax import nets
from gradejax.attribution import rules
from gradejax.attribution.common import as_targets, input_gradient, method

Array = jax.Array


@method
def guided_backprop(fn: nets.ModelFn, images: Array, targets: Array) -> Array:
  """Springenberg et al. 2015: backward signal kept where input and signal are positive."""
  return input_gradient(fn, images, as_targets(targets, images.shape[0]), rules.guided_relu)


@method
def deconvnet(fn: nets.ModelFn, images: Array, targets: Array) -> Array:
  """Zeiler & Fergus 2014: backward signal rectified at every ReLU, forward sign ignored."""
  return input_gradient(fn, images, as_targets(targets, images.shape[0]), rules.deconv_relu)
