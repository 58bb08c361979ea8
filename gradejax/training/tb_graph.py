"""TensorBoard's Graphs dashboard without TensorFlow or torch: a ``GraphDef`` built from the
jaxpr of a Flax module's forward pass.

One node per jaxpr equation (``op`` = the primitive, e.g. ``conv_general_dilated``), one per
parameter array and one ``images`` placeholder; edges follow the data. Node names are scoped by
the Flax module path that ``jax.named_scope`` records for every equation
(``GradeClassifier/head/dense0/dot_general_3``) and, inside modules whose layers are plain
functions (the face ResNet), by the gradejax tap each equation leads to
(``GradeClassifier/extractor/level3/block1/...``): TensorBoard folds every ``/`` prefix into a
group, so levels and blocks fold and unfold. The perturbations that the tap convention adds
(zeros) are left out.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.extend import core as jex_core
from flax import traverse_util
from tensorboard.compat.proto import attr_value_pb2, graph_pb2, node_def_pb2, tensor_shape_pb2


def _shape_attr(avals) -> attr_value_pb2.AttrValue:
  shapes = [tensor_shape_pb2.TensorShapeProto(
      dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in getattr(a, 'shape', ())])
      for a in avals]
  return attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(shape=shapes))


def _dtype_attr(aval) -> attr_value_pb2.AttrValue:
  return attr_value_pb2.AttrValue(s=str(getattr(aval, 'dtype', '')).encode())


def _vars(atoms) -> list:
  """The variables among jaxpr atoms (literals are constants, unhashable, and not nodes)."""
  return [a for a in atoms if not isinstance(a, jex_core.Literal)]


def _op_name(eqn) -> str:
  """The primitive, or for a call wrapper its function's name / inner primitives (relu is
  ``custom_jvp_call`` around ``max``: shown as ``custom_jvp_call:max``)."""
  p = eqn.primitive.name
  if 'name' in eqn.params and isinstance(eqn.params['name'], str):
    return f'{p}:{eqn.params["name"]}'
  inner = eqn.params.get('call_jaxpr') or eqn.params.get('jaxpr')
  inner = getattr(inner, 'jaxpr', inner)
  if inner is not None and hasattr(inner, 'eqns') and len(inner.eqns) <= 3:
    return f'{p}:' + '+'.join(e.primitive.name for e in inner.eqns)
  return p


def module_graph(module, example: jax.ShapeDtypeStruct | Any, **call_kwargs
                 ) -> graph_pb2.GraphDef:
  """The GraphDef of ``module.apply(variables, example)`` traced abstractly (no params are
  computed: ``jax.eval_shape`` of ``init``), e.g. ``example = jax.ShapeDtypeStruct((1, 150,
  150, 3), jnp.float32)``."""
  root = type(module).__name__
  example = jax.ShapeDtypeStruct(example.shape, example.dtype)
  variables = jax.eval_shape(module.init, jax.random.key(0), example)
  variables = {k: v for k, v in variables.items() if k != 'intermediates'}
  closed = jax.make_jaxpr(lambda v, x: module.apply(v, x, **call_kwargs))(variables, example)
  jaxpr = closed.jaxpr
  # Leaf paths of (variables, example) without the tuple index: ('params', 'head', ...), ().
  paths = [tuple(str(getattr(k, 'key', k)) for k in path[1:])
           for path, _ in jax.tree_util.tree_flatten_with_path((variables, example))[0]]
  nodes: list[node_def_pb2.NodeDef] = []
  producer: dict[Any, str] = {}
  perturbation: dict[Any, tuple[str, str]] = {}  # invar -> (module scope, tap name)
  for var, path in zip(jaxpr.invars, paths):
    if not path:  # the images
      name, op = 'images', 'Placeholder'
    elif path[0] == 'perturbations':
      module_path = '/'.join((root,) + path[1:-1])
      perturbation[var] = (module_path, path[-1])
      continue
    else:  # params/extractor/level0/block0/conv1/kernel -> root/extractor/level0/...
      name, op = '/'.join((root,) + path[1:]), f'Variable:{path[0]}'
    nodes.append(node_def_pb2.NodeDef(name=name, op=op, attr={
        '_output_shapes': _shape_attr([var.aval]), 'dtype': _dtype_attr(var.aval)}))
    producer[var] = name
  for var in jaxpr.constvars:
    producer[var] = f'{root}/const_{len(producer)}'
    nodes.append(node_def_pb2.NodeDef(name=producer[var], op='Const',
                                      attr={'_output_shapes': _shape_attr([var.aval])}))

  # Scope of every equation inside a tapped module: the tap its output flows into next (the
  # equations from one tap's perturbation add up to the next's belong to the second tap).
  eqn_tap: dict[int, str] = {}
  pending: dict[str, list[int]] = {}
  for i, e in enumerate(jaxpr.eqns):
    stack = str(e.source_info.name_stack)
    pending.setdefault(stack, []).append(i)
    hit = next((perturbation[v] for v in _vars(e.invars) if v in perturbation), None)
    if hit is not None and e.primitive.name == 'add':
      scope, tap = hit
      for j in pending.pop(scope, []) + ([i] if stack != scope else []):
        eqn_tap[j] = tap
  for i, e in enumerate(jaxpr.eqns):
    stack = str(e.source_info.name_stack) or root
    scope = f'{stack}/{eqn_tap[i]}' if i in eqn_tap else stack
    name = f'{scope}/{e.primitive.name}_{i}'
    inputs = [producer[v] for v in _vars(e.invars) if v in producer]
    attr = {'_output_shapes': _shape_attr([v.aval for v in e.outvars])}
    for k, p in e.params.items():
      if isinstance(p, (int, float, str, bool, tuple)) and len(str(p)) < 200:
        attr[k] = attr_value_pb2.AttrValue(s=str(p).encode())
    nodes.append(node_def_pb2.NodeDef(name=name, op=_op_name(e), input=inputs, attr=attr))
    for v in e.outvars:
      producer[v] = name
  outs = [producer[v] for v in _vars(jaxpr.outvars) if v in producer]
  for k, src in enumerate(outs):
    nodes.append(node_def_pb2.NodeDef(name=f'output_{k}', op='Identity', input=[src]))
  return graph_pb2.GraphDef(node=nodes)
