"""The one narrow calling convention between networks and the tools that probe them.

Every network in gradejax (the dlib face ResNet, the classifier on top of it, the toy nets in
the tests) follows three rules, so that attribution, feature visualisation and inversion work on
any of them:

1. ``__call__(self, images, *, relu=nn.relu, ...)``: ``images`` is ``[B, H, W, 3]`` float32 in
   ``[0, 1]``; ``relu`` is the rectifier used at *every* ReLU in the network, so a visualiser can
   swap in a guided-backprop or deconvnet rule without touching the params.
2. Every point worth probing goes through :func:`tap`, which records the value under its name
   (collection ``'intermediates'``) and lets a caller add a perturbation there (collection
   ``'perturbations'``; the gradient with respect to it is the gradient with respect to the
   activation, which is what Grad-CAM needs).
3. Names are flat strings; nested modules get their path joined with ``/``
   (``'level3/block0/out'``).

:func:`bind` turns ``(module, variables)`` into a plain function
``fn(images, relu=..., perturbations=None) -> (outputs, acts)`` that closes over the params, so
the probing code never sees Flax.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

Array = jax.Array
Relu = Callable[[Array], Array]


def tap(module: nn.Module, name: str, x: Array) -> Array:
  """Records ``x`` under ``name`` and adds the caller's perturbation, if one is given."""
  module.sow('intermediates', name, x)
  return module.perturb(name, x)


class ModelFn(Protocol):
  def __call__(self, images: Array, relu: Relu = ...,
               perturbations: Mapping[str, Array] | None = ...
               ) -> tuple[Array, dict[str, Array]]:
    ...


def _flat(tree: Mapping[str, Any]) -> dict[str, Any]:
  return traverse_util.flatten_dict(dict(tree), sep='/') if tree else {}


class _Static:
  """Hashable stand-in for a module and its call kwargs (jit cache key): compared by repr,
  since a module's fields may be lists."""

  def __init__(self, module: nn.Module, call_kwargs: dict[str, Any]):
    self.module, self.call_kwargs = module, call_kwargs
    self._key = repr((module, sorted(call_kwargs.items())))

  def __hash__(self):
    return hash(self._key)

  def __eq__(self, other):
    return isinstance(other, _Static) and self._key == other._key


@jax.tree_util.register_pytree_node_class
class Bound:
  """A module closed over its variables, callable as a :class:`ModelFn`.

  It is a pytree whose leaves are the variables and whose static part is the module, so it can
  be passed to ``jax.jit`` as an ordinary argument: new params of the same shapes (a sanity
  check's randomised copy, a checkpoint) reuse the compiled program instead of recompiling
  with the weights baked in as constants.
  """

  def __init__(self, module: nn.Module, variables: Mapping[str, Any], **call_kwargs):
    self.module = module
    self.variables = {k: v for k, v in variables.items()
                      if k not in ('intermediates', 'perturbations')}
    self.call_kwargs = call_kwargs

  def tree_flatten(self):
    return (self.variables,), _Static(self.module, self.call_kwargs)

  @classmethod
  def tree_unflatten(cls, static: _Static, children):
    return cls(static.module, children[0], **static.call_kwargs)

  def __call__(self, images, relu=nn.relu, perturbations=None):
    module, vs = self.module, dict(self.variables)
    if perturbations is not None:
      # Once the collection is present every tap needs an entry: the rest get zeros. Keys stay
      # the module's own paths (a tap name may itself contain '/', e.g. 'level3' and
      # 'level3/block0' both exist), so nothing is re-split.
      tree = _perturbation_shapes(module, self.variables, images, **self.call_kwargs)
      unknown = set(perturbations) - {'/'.join(k) for k in tree}
      if unknown:
        raise KeyError(f'No tap named {sorted(unknown)}; taps: {sorted("/".join(k) for k in tree)}')
      vs['perturbations'] = traverse_util.unflatten_dict({
          k: perturbations.get('/'.join(k), jnp.zeros(s.shape, s.dtype)) for k, s in tree.items()})
    out, state = module.apply(vs, images, relu=relu, mutable=['intermediates'], **self.call_kwargs)
    acts = {k: v[0] for k, v in _flat(state.get('intermediates', {})).items()}
    return out, acts


def jit_model_fn(f: Callable, static_argnames: tuple[str, ...] = ()) -> Callable:
  """``jax.jit(f)`` for an ``f`` whose first argument ``fn`` is a :class:`ModelFn`.

  A :class:`Bound` fn is a pytree whose leaves are its params: passed as a traced argument, one
  compile serves every set of params of the same shapes (a sanity check's randomised copy, a
  checkpoint). Any other callable is hashed as a static argument. ``static_argnames`` are
  static in both cases. The returned callable's ``jitted_static`` (``fn`` static) is there for
  ``.lower(...)``."""
  jitted_static = jax.jit(f, static_argnames=('fn',) + tuple(static_argnames))
  jitted_bound = jax.jit(f, static_argnames=tuple(static_argnames))

  def call(*args, **kwargs):
    fn = args[0] if args else kwargs.get('fn')
    return (jitted_bound if isinstance(fn, Bound) else jitted_static)(*args, **kwargs)

  call.jitted_static = jitted_static
  return call


def bind(module: nn.Module, variables: Mapping[str, Any], **call_kwargs) -> Bound:
  """Closes ``module`` over ``variables``.

  Returns ``fn(images, relu=nn.relu, perturbations=None) -> (outputs, acts)`` where ``acts`` maps
  each tapped name to its activation (``[B, ...]``). ``perturbations`` is a flat dict name ->
  array added at that tap (see :func:`zero_perturbations_like`); names not given are left alone.
  ``call_kwargs`` are passed to the module on every call (e.g. ``train=False``). The result is a
  pytree (:class:`Bound`): pass it to jitted functions as an argument, not as a static one.
  """
  return Bound(module, variables, **call_kwargs)


def tap_order(fn: ModelFn, images: Array) -> list[str]:
  """Tap names in forward order (one eager call on ``images[:1]``; jit and eval_shape would
  return them sorted)."""
  with jax.disable_jit():
    _, acts = fn(jnp.asarray(images[:1]))
  return list(acts)


def _perturbation_shapes(module: nn.Module, variables, images: Array, **call_kwargs):
  """Tuple key path -> ShapeDtypeStruct of every tap (shape-only, no FLOPs)."""
  variables = {k: v for k, v in variables.items() if k not in ('intermediates', 'perturbations')}

  def shapes(vs, x):
    _, state = module.apply(vs, x, mutable=['perturbations', 'intermediates'], **call_kwargs)
    return state['perturbations']

  return traverse_util.flatten_dict(dict(jax.eval_shape(shapes, variables, images)))


def zero_perturbations_like(module: nn.Module, variables, images: Array,
                            **call_kwargs) -> dict[str, Array]:
  """Flat dict name -> zeros shaped like each tapped activation."""
  tree = _perturbation_shapes(module, variables, images, **call_kwargs)
  return {'/'.join(k): jnp.zeros(s.shape, s.dtype) for k, s in tree.items()}


def activation_shapes(fn: ModelFn, images: Array) -> dict[str, tuple[int, ...]]:
  """Shapes of every tapped activation for ``images`` (no FLOPs spent)."""
  _, acts = jax.eval_shape(fn, images)
  return {k: tuple(v.shape) for k, v in acts.items()}
