"""The grade classifier: dlib's face ResNet (frozen) -> head input -> MLP head -> logits.

Follows gradejax/nets/convention.py: ``__call__(images, *, relu=nn.relu, train=False)`` with images
``[B, 150, 150, 3]`` in [0, 1]; taps are the extractor's under ``extractor/`` (``extractor/level1``,
``extractor/descriptor``, ...), then ``head/hidden0``.. and ``logits``.

Params: ``{'extractor': <FaceResNet params>, 'head': {...}}`` plus a ``'norm'`` collection
(``mean``, ``std`` of the head input over the training set, so the head sees standardised
features; constants, never trained). The trainer keeps the frozen part out of the optimiser with
``extractor.freeze_partition`` (the head, plus ``extractor/<config.unfreeze>`` if set).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gradejax.nets import facenet
from gradejax import nets, stats

Array = jax.Array


def FaceTrunk(input_means=facenet.DLIB_INPUT_MEANS, head_input: str = 'descriptor'
              ) -> facenet.FaceResNet:  # noqa: N802 - used like the module it builds
  """FaceResNet run up to the tap ``head_input`` only, returned globally average pooled [B, D]
  (``head_input='descriptor'`` is the whole network). Same params, taps and arithmetic."""
  return facenet.FaceResNet(input_means=tuple(input_means), stop_at=head_input)


def norm_stats(features: Array, mask: Array | None = None, eps: float = 1e-6
               ) -> dict[str, Array]:
  """The :class:`Head`'s ``norm`` collection for ``features [N, D]``: ``mean`` and ``std`` [D]
  over the rows where ``mask`` (bool [N]; None: all), the std floored at ``eps`` so a constant
  feature standardises to 0 instead of dividing by 0. jit-able (the mask may be traced): the
  trainer's head and every cross-validation fold's head standardise the same way."""
  mean, std = stats.mean_std(features, mask)
  return {'mean': mean, 'std': jnp.maximum(std, eps)}


class Head(nn.Module):
  """Standardise -> [Dense -> relu -> dropout] x len(widths) -> Dense(num_classes).

  ``features [B, D]`` -> logits ``[B, num_classes]``. ``widths=()`` is logistic regression.
  """
  num_classes: int = 2
  widths: Sequence[int] = (64,)
  dropout: float = 0.0

  @nn.compact
  def __call__(self, features: Array, *, relu: nets.Relu = nn.relu, train: bool = False
               ) -> Array:
    d = features.shape[-1]
    mean = self.variable('norm', 'mean', jnp.zeros, (d,), jnp.float32).value
    std = self.variable('norm', 'std', jnp.ones, (d,), jnp.float32).value
    x = (features - mean) / std
    for i, w in enumerate(self.widths):
      x = nets.tap(self, f'hidden{i}', relu(nn.Dense(w, name=f'dense{i}')(x)))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, name='out')(x)


class GradeClassifier(nn.Module):
  """images ``[B,150,150,3]`` in [0, 1] -> logits ``[B, num_classes]``.

  ``classify_features`` runs the head alone on cached features ``[B, D]``: the same submodule
  (same param paths, same dropout streams), so training on cached features and training through
  the extractor see identical draws.
  """
  num_classes: int = 2
  widths: Sequence[int] = (64,)
  dropout: float = 0.0
  head_input: str = 'descriptor'
  input_means: tuple[float, float, float] = facenet.DLIB_INPUT_MEANS

  def setup(self):
    self.extractor = FaceTrunk(input_means=self.input_means, head_input=self.head_input)
    self.head = Head(self.num_classes, tuple(self.widths), self.dropout)

  def __call__(self, images: Array, *, relu: nets.Relu = nn.relu, train: bool = False
               ) -> Array:
    logits = self.head(self.extractor(images, relu=relu), relu=relu, train=train)
    return nets.tap(self, 'logits', logits)

  def classify_features(self, features: Array, *, relu: nets.Relu = nn.relu,
                        train: bool = False) -> Array:
    """Head-input features ``[B, D]`` -> logits ``[B, num_classes]``."""
    return self.head(features, relu=relu, train=train)

