"""What to maximise. An objective scores every image of a batch: ``(images, outputs, acts) ->
[B]`` (``images`` [B,H,W,3] in [0, 1] as the network saw them, ``outputs``/``acts`` from a
:class:`gradejax.nets.ModelFn`). Objectives compose with ``+``, ``-``, scalar ``*`` and ``*``
of two objectives (a product, for interactions), like lucid's, but stay pure functions.

Each constructor takes ``batch``: None scores every image, an int scores only that image (0
elsewhere), so one batch optimises many different units at once.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

Array = jax.Array
ScoreFn = Callable[[Array, Array, dict], Array]


@dataclasses.dataclass(frozen=True)
class Objective:
  score: ScoreFn
  name: str = ''

  def __call__(self, images: Array, outputs: Array, acts: dict) -> Array:
    return self.score(images, outputs, acts)

  def __add__(self, other):
    other = as_objective(other)
    return Objective(lambda i, o, a: self(i, o, a) + other(i, o, a), f'{self.name} + {other.name}')

  __radd__ = __add__

  def __neg__(self):
    return Objective(lambda i, o, a: -self(i, o, a), f'-{self.name}')

  def __sub__(self, other):
    return self + (-as_objective(other))

  def __mul__(self, other):
    if isinstance(other, Objective):
      return Objective(lambda i, o, a: self(i, o, a) * other(i, o, a),
                       f'({self.name}) * ({other.name})')
    return Objective(lambda i, o, a: other * self(i, o, a), f'{other} * {self.name}')

  __rmul__ = __mul__


def as_objective(x) -> Objective:
  if isinstance(x, Objective):
    return x
  return Objective(lambda i, o, a: jnp.full((i.shape[0],), x, jnp.float32), str(x))


def _only(batch: int | None, per_image: Array) -> Array:
  if batch is None:
    return per_image
  return jnp.where(jnp.arange(per_image.shape[0]) == batch, per_image, 0.0)


def _act(acts: dict, layer: str) -> Array:
  if layer not in acts:
    raise KeyError(f'no tap {layer!r}; taps: {sorted(acts)}')
  return acts[layer]


def _mid(n: int, i: int | None) -> int:
  return n // 2 if i is None else i


def neuron(layer: str, unit: int, y: int | None = None, x: int | None = None,
           batch: int | None = None) -> Objective:
  """One unit at one spatial position (the centre by default) of a [B,h,w,C] tap; for a
  [B,C] tap, the unit itself."""
  def score(i, o, acts):
    a = _act(acts, layer)
    v = a[:, _mid(a.shape[1], y), _mid(a.shape[2], x), unit] if a.ndim == 4 else a[:, unit]
    return _only(batch, v)
  return Objective(score, f'neuron {layer}:{unit}')


def channel(layer: str, unit: int, batch: int | None = None) -> Objective:
  """Mean of one channel over all positions."""
  def score(i, o, acts):
    a = _act(acts, layer)
    return _only(batch, a[..., unit].reshape(a.shape[0], -1).mean(1))
  return Objective(score, f'channel {layer}:{unit}')


def layer(layer: str, batch: int | None = None) -> Objective:
  """DeepDream: mean of the squared activations of the whole tap."""
  def score(i, o, acts):
    a = _act(acts, layer)
    return _only(batch, jnp.square(a).reshape(a.shape[0], -1).mean(1))
  return Objective(score, f'layer {layer}')


def direction(layer: str, vector: Array, batch: int | None = None) -> Objective:
  """Mean over positions of the dot product of the activation with ``vector`` [C]."""
  vector = jnp.asarray(vector, jnp.float32)

  def score(i, o, acts):
    a = _act(acts, layer)
    return _only(batch, (a @ vector).reshape(a.shape[0], -1).mean(1))
  return Objective(score, f'direction {layer}')


def logit(k: int, batch: int | None = None) -> Objective:
  """The network's output k (a class logit of the classifier, or a descriptor unit)."""
  return Objective(lambda i, o, a: _only(batch, o[:, k]), f'logit {k}')


def probability(k: int, batch: int | None = None) -> Objective:
  """Softmax probability of class k."""
  return Objective(lambda i, o, a: _only(batch, jax.nn.softmax(o, -1)[:, k]), f'p(class {k})')


def channel_batch(layer_name: str, units: Sequence[int]) -> Objective:
  """Image i maximises channel ``units[i]``: one batch, many units, one compiled program."""
  units = jnp.asarray(units, jnp.int32)

  def score(i, o, acts):
    a = _act(acts, layer_name)
    a = a.reshape(a.shape[0], -1, a.shape[-1]).mean(1) if a.ndim == 4 else a
    return jnp.take_along_axis(a, units[:, None], axis=1)[:, 0]
  return Objective(score, f'channels {layer_name}')


def neuron_batch(layer_name: str, units: Sequence[int]) -> Objective:
  """Image i maximises the centre neuron of channel ``units[i]``."""
  units = jnp.asarray(units, jnp.int32)

  def score(i, o, acts):
    a = _act(acts, layer_name)
    if a.ndim == 4:
      a = a[:, a.shape[1] // 2, a.shape[2] // 2]
    return jnp.take_along_axis(a, units[:, None], axis=1)[:, 0]
  return Objective(score, f'neurons {layer_name}')


def interpolate(a: Objective, b: Objective, n: int) -> Objective:
  """Image i of n maximises (1 - t_i) a + t_i b with t_i = i / (n - 1): a path between units."""
  t = jnp.linspace(0.0, 1.0, n)
  return Objective(lambda i, o, ac: (1 - t) * a(i, o, ac) + t * b(i, o, ac),
                   f'interpolate {a.name} -> {b.name}')


def _gram(a: Array) -> Array:
  f = a.reshape(a.shape[0], -1, a.shape[-1])
  return jnp.einsum('bpc,bpd->bcd', f, f) / f.shape[1]


def diversity(layer_name: str) -> Objective:
  """Minus the mean cosine similarity of each image's Gram matrix at ``layer_name`` to the
  others' (lucid's diversity term): adding it pushes a batch apart. Scores are per image."""
  def score(i, o, acts):
    g = _gram(_act(acts, layer_name)).reshape(i.shape[0], -1)
    g = g / (jnp.linalg.norm(g, axis=1, keepdims=True) + 1e-8)
    sim = g @ g.T
    n = i.shape[0]
    return -(sim.sum(1) - jnp.diag(sim)) / jnp.maximum(n - 1, 1)
  return Objective(score, f'diversity {layer_name}')


def gram_similarity(acts_layer: Array) -> Array:
  """Mean pairwise cosine similarity of Gram matrices of a batch (the diversity metric)."""
  g = _gram(acts_layer).reshape(acts_layer.shape[0], -1)
  g = g / (jnp.linalg.norm(g, axis=1, keepdims=True) + 1e-8)
  sim = g @ g.T
  n = g.shape[0]
  return (sim.sum() - jnp.trace(sim)) / (n * (n - 1))
