"""DeepLIFT with the rescale rule (Shrikumar et al. 2017) for ReLU networks.

Approach: the input batch and its references are stacked into one ``[2B, ...]`` batch and run
through the network with ``relu=rules.rescale_relu``. Every ReLU then sees its own
pre-activation for the input (first half) and for the reference (second half); its backward
pass multiplies the upstream signal by the rescale multiplier ``Δrelu(z) / Δz`` instead of the
derivative. Affine layers (convolution, dense, average pooling, padding, residual additions,
inference-mode normalisation) have their weights as exact multipliers, so the ordinary chain
rule composes the multipliers, and ``(x - x_ref) * multiplier`` sums over pixels and channels
to ``score(x) - score(x_ref)`` ("summation to delta").

Exactness conditions: (1) every nonlinearity between the input and the explained output is the
``relu`` the network takes as a parameter; anything else (max pooling, softmax, sigmoid, a
hard-coded ``nn.relu``) falls back to its gradient at ``x``, and summation to delta then holds
only approximately (for max pooling: when x and the reference pick the same argmax, or both
ReLUs below it are inactive); (2) images in a batch do not interact; (3) the explained output
is a pre-softmax score.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gradejax import nets
from gradejax.attribution import rules
from gradejax.attribution.common import as_targets, method, pick

Array = jax.Array


@method()
def deeplift_rescale(fn: nets.ModelFn, images: Array, targets: Array,
                     baseline: Array | None = None) -> Array:
  """DeepLIFT-rescale contributions ``[B, H, W, C]`` (target-score units) of ``images`` against
  the reference input ``baseline`` (broadcast to ``images``; None: black)."""
  b = images.shape[0]
  t = as_targets(targets, b)
  ref = jnp.zeros_like(images) if baseline is None else jnp.broadcast_to(baseline, images.shape)

  def score(stacked):
    out, _ = fn(stacked, relu=rules.rescale_relu)
    return jnp.sum(pick(out[:b], t))

  m = jax.grad(score)(jnp.concatenate([images, ref], axis=0))[:b]
  return (images - ref) * m
