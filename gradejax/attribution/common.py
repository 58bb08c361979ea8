"""Plumbing shared by every attribution method: targets, precision, jit, heat-map reduction.

Every method reaches the network only through the ModelFn of :mod:`gradejax.nets`
(``fn(images, relu=..., perturbations=None) -> (outputs [B, K], acts)``) and explains one output
unit per image (``targets``: int [B], a class index for a classifier or a descriptor unit for
the face ResNet). Images in a batch must not interact (no train-mode batch norm), so the gradient
of the *sum* of the per-image target scores is every image's own gradient in one backward pass.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from gradejax import nets

Array = jax.Array
DEFAULT_PRECISION = 'highest'


def as_targets(targets: Any, batch: int) -> Array:
  """int or int [B] -> int32 [B]; a scalar explains the same unit for every image."""
  t = jnp.asarray(targets)
  if not jnp.issubdtype(t.dtype, jnp.integer):
    raise TypeError(f'targets must be integer class/unit indices, got dtype {t.dtype}')
  if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != batch):
    raise ValueError(f'targets must be a scalar or shape [{batch}] (one per image), got '
                     f'shape {t.shape}')
  return jnp.broadcast_to(t.astype(jnp.int32), (batch,))


def pick(outputs: Array, targets: Array) -> Array:
  """outputs [B, K], targets int [B] -> the target scores [B]."""
  return jnp.take_along_axis(outputs, targets[:, None], axis=1)[:, 0]


SCORES = ('logit', 'contrast')


def class_score(values: Array, targets: Array, score: str = 'logit') -> Array:
  """Per-class values [B, ..., K] (outputs, or drops of them: anything linear in the outputs)
  -> the explained score [B, ...] of each image's target class.

  ``score``: 'logit' (the target's value) or 'contrast' (the target's minus the mean of the
  other classes': with two classes the logit difference, which alone decides the prediction;
  a perturbation that moves every class's logit alike -- a disturbed face descriptor read by
  a near-antisymmetric head -- scores 0, while one that moves the evidence for the target
  against the others counts twice).
  """
  t = targets.reshape(targets.shape + (1,) * (values.ndim - 1))
  own = jnp.take_along_axis(values, t, axis=-1)[..., 0]
  if score == 'logit':
    return own
  if score == 'contrast':
    k = values.shape[-1]
    if k < 2:
      raise ValueError("score='contrast' needs at least two outputs (classes)")
    return own - (jnp.sum(values, axis=-1) - own) / (k - 1)
  raise ValueError(f"score must be one of {', '.join(SCORES)}; got {score!r}")


def target_score(fn: nets.ModelFn, images: Array, targets: Array, relu: nets.Relu = nn.relu,
                 perturbations: dict[str, Array] | None = None) -> tuple[Array, Any]:
  """Sum over the batch of each image's target score, plus (outputs, acts) as aux."""
  out, acts = fn(images, relu=relu, perturbations=perturbations)
  return jnp.sum(pick(out, targets)), (out, acts)


def input_gradient(fn: nets.ModelFn, images: Array, targets: Array,
                   relu: nets.Relu = nn.relu) -> Array:
  """d score_b / d images_b for every b at once: [B, H, W, C]."""
  return jax.grad(lambda x: target_score(fn, x, targets, relu)[0])(images)


def _traced(p: inspect.Parameter) -> bool:
  """A keyword-only parameter annotated with ``Array`` may be an array: traced, not static."""
  return 'Array' in str(p.annotation)


def options_of(f: Callable) -> dict[str, inspect.Parameter]:
  """The keyword-only parameters of ``f`` (its options), by name, in signature order."""
  f = getattr(f, 'unjitted', f)
  return {n: p for n, p in inspect.signature(f).parameters.items()
          if p.kind is inspect.Parameter.KEYWORD_ONLY}


def static_options(f: Callable) -> tuple[str, ...]:
  """The options jit treats as static: every keyword-only parameter except those annotated
  with ``Array`` (a fill value, a noise level: traced, so a new value reuses the program)."""
  return tuple(n for n, p in options_of(f).items() if not _traced(p))


def method(*args: Callable | str) -> Callable:
  """Decorator: jit the method and run it at a precision.

  Written ``@method``. ``fn`` is static unless it is a ``nets.Bound``, and so is every
  keyword-only option (:func:`static_options`: shapes, modes, loop sizes), read from the
  signature, so each option's name is written once, where its default is. (``@method('a',
  ...)`` still works for code written before: the names must be parameters and are made static
  as well.)

  Adds the keyword ``precision`` ('highest' by default; 'default', 'high', 'float32', ... or
  None to leave JAX's setting alone): it is entered with ``jax.default_matmul_precision``
  around the call, so every dot and convolution of the traced network uses it (it is part of
  jit's cache key, so switching it recompiles instead of reusing a stale executable).
  """
  if len(args) == 1 and callable(args[0]):
    return _method(args[0], ())
  return lambda f: _method(f, args)


def _method(f: Callable, extra: tuple[str, ...]) -> Callable:
  params = inspect.signature(f).parameters
  unknown = [n for n in extra if n not in params]
  if unknown:
    raise TypeError(f'@method({", ".join(map(repr, unknown))}): {f.__name__} has no such '
                    f'parameter')
  static = static_options(f) + tuple(n for n in extra if n not in static_options(f))
  jitted = nets.jit_model_fn(f, static)  # a nets.Bound fn traced, any other callable static

  @functools.wraps(f)
  def wrapper(*args, precision: str | None = DEFAULT_PRECISION, **kwargs):
    ctx = (jax.default_matmul_precision(precision) if precision is not None
           else contextlib.nullcontext())
    with ctx:
      return jitted(*args, **kwargs)

  wrapper.unjitted = f
  wrapper.jitted = jitted.jitted_static  # for .lower(...) (cost analysis in benchmarks)
  return wrapper


def scan_unroll(unroll: int | bool | None) -> int | bool:
  """The ``lax.scan`` unroll for chunked loops whose body takes a gradient (IG steps,
  SmoothGrad samples). None picks per backend: fully unrolled on CPU, where XLA runs a
  backward pass inside a while loop ~4x slower than outside one (face ResNet, 8 images x 32
  IG steps in chunks of 16, jax 0.10.2: 7.9 s unrolled, 33.6 s rolled), and rolled
  elsewhere, where the loop is what keeps memory at one chunk."""
  if unroll is None:
    return jax.default_backend() == 'cpu'
  return unroll


def chunk_scan(body: Callable, init, xs, unroll: int | bool | None = None):
  """``lax.scan(body, init, xs)`` with :func:`scan_unroll`; a single chunk runs straight.

  JAX emits a while loop for a length-1 scan even when asked to unroll it fully, and XLA on
  CPU ran the face ResNet's 128-image gradient ~3x slower inside that one-trip loop (7.7 s vs
  2.7 s); one chunk needs no loop to bound its memory, so it is called directly.
  """
  if jax.tree.leaves(xs)[0].shape[0] == 1:
    carry, y = body(init, jax.tree.map(lambda a: a[0], xs))
    return carry, jax.tree.map(lambda a: a[None], y)
  return lax.scan(body, init, xs, unroll=scan_unroll(unroll))


def chunked_map(f: Callable[[Array], Array], xs: Array, unroll: int | bool | None = None
                ) -> Array:
  """``lax.map(f, xs)`` as a :func:`chunk_scan`, for forward-only bodies (occluder, deletion,
  ROAD and removal positions). None: rolled on every backend: an unrolled copy of the network
  per chunk compiles for 10-50 s against 1-2 s rolled, which is what a loop run once or twice
  (deletion/insertion, ROAD, removal) pays. Rolled forwards are slower on a CPU, though
  (quiet 2-core CPU, face ResNet, 8 images x 256 occluder positions, 2026-12-03: 157-171
  forwards/s rolled at any chunk or partial unroll, 224-229 fully unrolled), so a loop the
  caller reuses many times (the report's occlusion over the held-out fold) passes
  ``unroll=scan_unroll(None)``."""
  return chunk_scan(lambda _, x: (None, f(x)), None, xs, False if unroll is None else unroll)[1]


def to_heatmap(attr: Array, reduce: str = 'sum') -> Array:
  """Attributions [B, H, W, C] (or already [B, H, W]) -> one value per pixel [B, H, W].

  ``reduce``: 'sum' keeps the sign (gradient x input, IG, DeepLIFT: the channels' shares add
  up), 'abs_max' is Simonyan et al.'s max over channels of |gradient| (saliency-like maps whose
  sign per channel means little), 'abs_sum' the L1 norm over channels.
  """
  if attr.ndim == 3:
    return attr
  if reduce == 'sum':
    return jnp.sum(attr, axis=-1)
  if reduce == 'abs_max':
    return jnp.max(jnp.abs(attr), axis=-1)
  if reduce == 'abs_sum':
    return jnp.sum(jnp.abs(attr), axis=-1)
  raise ValueError(f"reduce must be 'sum', 'abs_max' or 'abs_sum', got {reduce!r}")


def upsample(maps: Array, size: tuple[int, int]) -> Array:
  """[B, h, w] -> [B, H, W] bilinear (half-pixel centres, as Grad-CAM's reference code)."""
  return jax.image.resize(maps, (maps.shape[0],) + tuple(size), 'bilinear')
