"""DeepLIFT with the rescale rule (Shrikumar et al. 2017) for ReLU networks with max pooling.

Approach: the input batch and its references are stacked into one ``[2B, ...]`` batch and run
through the network with ``relu=rules.rescale_relu``. Every ReLU then sees its own
pre-activation for the input (first half) and for the reference (second half); its backward
pass multiplies the upstream signal by the rescale multiplier ``Δrelu(z) / Δz`` instead of the
derivative. Affine layers (convolution, dense, average pooling, padding, residual additions,
inference-mode normalisation) have their weights as exact multipliers, so the ordinary chain
rule composes the multipliers, and ``(x - x_ref) * multiplier`` sums over pixels and channels
to ``score(x) - score(x_ref)`` ("summation to delta").

Max pooling is not a parameter of the calling convention (networks call ``lax.reduce_window``
or ``nn.max_pool`` themselves), so the traced network is re-evaluated with every
``reduce_window_max`` replaced by :func:`_rescale_max_pool`: the max-pool rule of DeepLIFT as
captum's ``DeepLift`` implements it. Per window, the output difference ``Δy = y - y_ref`` is
routed to the input's argmax (the part ``max(y, y_ref) - y_ref``) and to the reference's argmax
(the part ``y - max(y, y_ref)``), summed over overlapping windows, and divided by ``Δx`` at each
input position, so the window's multipliers times ``Δx`` sum to ``Δy`` exactly. (captum scatters
with ``max_unpool2d``, which overwrites instead of adding where windows overlap, e.g. the face
ResNet's 3x3/2 stem pool; here the scatter is the VJP of the pool, which adds.)
``max_pool='gradient'`` keeps the pool's ordinary gradient at ``x`` instead (the argmax
'switches'; exact only where x and the reference pick the same argmax).

Exactness conditions: (1) every nonlinearity between the input and the explained output is the
``relu`` the network takes as a parameter or a max pool (``reduce_window`` with ``max``,
outside ``lax.scan``/``cond`` bodies); anything else (softmax, sigmoid, a hard-coded ``nn.relu``,
a global ``jnp.max``) falls back to its gradient at ``x``, and summation to delta then holds
only approximately; (2) images in a batch do not interact; (3) the explained output is a
pre-softmax score.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.extend as jex
import jax.numpy as jnp
from jax import lax

from gradejax import nets
from gradejax.attribution import rules
from gradejax.attribution.common import as_targets, method, pick

Array = jax.Array

MAX_POOL_RULES = ('rescale', 'gradient')
# Below this |Δx| the rule uses the ordinary gradient (captum's eps): no contribution can be
# routed to such a position except a zero one (its argmax output difference is then <= 0 on
# the input's side and routed to the reference's argmax instead).
_EPS = 1e-10


def _max_pool(x: Array, window: dict[str, Any]) -> Array:
  return lax.reduce_window(x, -jnp.inf, lax.max, window['window_dimensions'],
                           window['window_strides'], window['padding'],
                           window['base_dilation'], window['window_dilation'])


@functools.lru_cache(maxsize=None)
def _rescale_max_pool_for(window_items: tuple) -> Callable[[Array], Array]:
  """The max pool of one window geometry (``reduce_window_max``'s params) with DeepLIFT's
  max-pool rule as its backward pass, for a stacked ``[2B, ...]`` batch."""
  window = dict(window_items)
  pool = functools.partial(_max_pool, window=window)

  @jax.custom_vjp
  def rescale_pool(z):
    return pool(z)

  def fwd(z):
    return pool(z), z

  def bwd(z, g):
    half = z.shape[0] // 2
    zx, zr = z[:half], z[half:]
    (yx, back_x), (yr, back_r) = jax.vjp(pool, zx), jax.vjp(pool, zr)
    gx = g[:half]
    cross = jnp.maximum(yx, yr)
    # The window's Δy, split between the two argmaxes; the scatter adds overlapping windows.
    routed = back_x(gx * (cross - yr))[0] + back_r(gx * (yx - cross))[0]
    dz = zx - zr
    small = jnp.abs(dz) < _EPS
    m_x = jnp.where(small, back_x(gx)[0], routed / jnp.where(small, 1, dz))
    return (jnp.concatenate([m_x, back_r(g[half:])[0]], axis=0),)

  rescale_pool.defvjp(fwd, bwd)
  return rescale_pool


def _rescale_max_pool(z: Array, **window) -> Array:
  return _rescale_max_pool_for(tuple(sorted(window.items())))(z)


def _has_max_pool(jaxpr) -> bool:
  return any(e.primitive.name == 'reduce_window_max' or
             (_call_jaxpr(e) is not None and _has_max_pool(_call_jaxpr(e).jaxpr))
             for e in jaxpr.eqns)


def _call_jaxpr(eqn) -> Any:
  """The inner ClosedJaxpr of a plain (inlinable) call such as ``jit``, or of a custom-gradient
  call holding a max pool (e.g. gradejax.nets.facenet.max_pool, a reduce_window with a faster
  gradient: inlined, the pool rule replaces its custom gradient), else None. Other custom
  gradients (the relu rules, gradejax.attribution.rules) stay as they are."""
  name = eqn.primitive.name
  if name in ('jit', 'pjit', 'closed_call', 'core_call', 'custom_vjp_call',
              'custom_vjp_call_jaxpr'):
    inner = eqn.params.get('jaxpr', eqn.params.get('call_jaxpr', eqn.params.get('fun_jaxpr')))
    if isinstance(inner, jex.core.ClosedJaxpr) and (
        not name.startswith('custom') or _has_max_pool(inner.jaxpr)):
      return inner
  return None


def _eval_with_pool_rule(jaxpr, consts, *args) -> list[Array]:
  """Evaluates ``jaxpr`` with every ``reduce_window_max`` (also inside ``jit`` calls, which are
  inlined) replaced by :func:`_rescale_max_pool`; every other equation is bound as traced."""
  env = {}

  def read(v):
    return v.val if isinstance(v, jex.core.Literal) else env[v]

  def write(v, val):
    if not isinstance(v, jex.core.DropVar):
      env[v] = val

  for v, val in zip(jaxpr.constvars, consts):
    write(v, val)
  for v, val in zip(jaxpr.invars, args):
    write(v, val)
  for eqn in jaxpr.eqns:
    invals = [read(v) for v in eqn.invars]
    inner = _call_jaxpr(eqn)
    if eqn.primitive.name == 'reduce_window_max':
      outs = [_rescale_max_pool(*invals, **eqn.params)]
    elif inner is not None:
      outs = _eval_with_pool_rule(inner.jaxpr, inner.consts, *invals)
    else:
      with eqn.ctx.manager:  # as jax.core.eval_jaxpr binds (jax >= 0.9: params only)
        outs = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
      if not eqn.primitive.multiple_results:
        outs = [outs]
    for v, val in zip(eqn.outvars, outs):
      write(v, val)
  return [read(v) for v in jaxpr.outvars]


def with_max_pool_rule(f: Callable[[Array], Array]) -> Callable[[Array], Array]:
  """``f`` (one array -> one array, run on a stacked ``[2B, ...]`` batch) with DeepLIFT's
  max-pool rule as the backward pass of each of its max pools."""
  def wrapped(x):
    closed = jax.make_jaxpr(f)(x)
    return _eval_with_pool_rule(closed.jaxpr, closed.consts, x)[0]
  return wrapped


@method('max_pool')
def deeplift_rescale(fn: nets.ModelFn, images: Array, targets: Array,
                     baseline: Array | None = None, max_pool: str = 'rescale') -> Array:
  """DeepLIFT-rescale contributions ``[B, H, W, C]`` (target-score units) of ``images`` against
  the reference input ``baseline`` (broadcast to ``images``; None: black). ``max_pool``:
  'rescale' (DeepLIFT's max-pool rule, summation to delta holds through pooling) or 'gradient'
  (the pool's ordinary gradient at ``x``, the rule before issue 21)."""
  if max_pool not in MAX_POOL_RULES:
    raise ValueError(f'max_pool must be one of {MAX_POOL_RULES}, got {max_pool!r}')
  b = images.shape[0]
  t = as_targets(targets, b)
  ref = jnp.zeros_like(images) if baseline is None else jnp.broadcast_to(baseline, images.shape)

  def score(stacked):
    out, _ = fn(stacked, relu=rules.rescale_relu)
    return jnp.sum(pick(out[:b], t))

  if max_pool == 'rescale':
    score = with_max_pool_rule(score)
  m = jax.grad(score)(jnp.concatenate([images, ref], axis=0))[:b]
  return (images - ref) * m
