"""The optimisation: the whole run is ONE jit-compiled ``lax.scan`` over steps (on CPU: one
compiled step called from a host loop, :func:`host_loop`), batched over images (one unit per
image) and, with :func:`render_sharded`, split over every device.

Per step: image = param.image(params) -> optional blur -> per-image random robustness
transform (key folded with the step) -> network -> objective [B] -> Adam ascent on its sum
(images are independent, so the gradient of the sum is each image's own gradient). Optional
gradient blurring for pixel parameters.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from gradejax import batching, distributed, nets
from gradejax.optvis import regularisers, transform
from gradejax.optvis.objectives import Objective
from gradejax.optvis.param import Param

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Settings:
  steps: int = 256
  learning_rate: float = 0.05
  robustness: transform.Robustness = transform.Robustness()
  image_blur: float = 0.0  # sigma (px) of a blur of the image at every step
  grad_blur: float = 0.0  # sigma (px) of a blur of the gradient (pixel parameters only)


def _loss(params, key, fn, objective: Objective, param: Param, s: Settings, relu):
  img = param.image(params)
  img = regularisers.blur(img, s.image_blur)
  seen = transform.apply(key, img, s.robustness)
  out, acts = fn(seen, relu=relu)
  scores = objective(seen, out, acts)
  return -jnp.sum(scores), scores


# The host-side listener of the steps done (gradejax.progress lines); None: nobody listens.
_on_step: list[Callable[[int], None] | None] = [None]


def _step_done(i) -> None:
  if _on_step[0] is not None:
    _on_step[0](int(i) + 1)


@contextlib.contextmanager
def step_listener(listener: Callable[[int], None]) -> Iterator[None]:
  """Calls ``listener(steps done)`` from the compiled loop while it runs (a host callback per
  step, no output: the images are the same), so a long optimisation can print progress. In a
  sharded run each device reports each step: ``listener`` must accept repeats."""
  _on_step[0] = listener
  try:
    yield
  finally:
    _on_step[0] = None


def _step(fn, p, st, key, i, *, objective, param, settings, relu):
  """One Adam step at step index ``i``: (params, optimiser state, scores [B])."""
  s = settings
  g, scores = jax.grad(_loss, has_aux=True)(p, jax.random.fold_in(key, i), fn, objective,
                                            param, s, relu)
  if s.grad_blur > 0:
    g = regularisers.blur(g, s.grad_blur)
  upd, st = optax.adam(s.learning_rate).update(g, st, p)
  jax.debug.callback(_step_done, i)
  return optax.apply_updates(p, upd), st, scores


def _optimise(fn, params, key, *, objective, param, settings, relu):
  def step(carry, i):
    p, st, scores = _step(fn, *carry, key, i, objective=objective, param=param,
                          settings=settings, relu=relu)
    return (p, st), scores

  opt = optax.adam(settings.learning_rate)
  (params, _), history = jax.lax.scan(step, (params, opt.init(params)),
                                      jnp.arange(settings.steps))
  return params, history


def _placed(tree, shard):
  """``tree``'s leaves on ``shard`` (batch-sharded; scalars replicated on its mesh)."""
  rep = NamedSharding(shard.mesh, PartitionSpec())
  return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, shard if a.ndim else rep),
                      tree)


def _step_units(fn, p, st, key, i, units, *, objective_for, param, settings, relu, shard):
  p, st, scores = _step(fn, p, st, key, i, objective=objective_for(units), param=param,
                        settings=settings, relu=relu)
  # The next step's inputs keep this step's placement: one compiled step for the whole loop.
  return _placed(p, shard), _placed(st, shard), scores


def _optimise_units(fn, params, key, units, *, objective_for, param, settings, relu, shard):
  del shard  # the scan places its carry itself
  # The objective is built from traced units, so a new batch of units of the same size reuses
  # the compiled program instead of baking the units in as constants.
  return _optimise(fn, params, key, objective=objective_for(units), param=param,
                   settings=settings, relu=relu)


_STATIC = ('objective', 'param', 'settings', 'relu')
_STATIC_UNITS = ('objective_for', 'param', 'settings', 'relu', 'shard')
# A nets.Bound model is a pytree (params are traced arguments: one compile per shape); any other
# callable is static.
_optimise_jit = nets.jit_model_fn(_optimise, _STATIC)
_optimise_units_jit = nets.jit_model_fn(_optimise_units, _STATIC_UNITS)
_step_jit = nets.jit_model_fn(_step, _STATIC)
_step_units_jit = nets.jit_model_fn(_step_units, _STATIC_UNITS)
_stack = jax.jit(lambda rows: jnp.stack(rows))


def host_loop() -> bool:
  """Whether the steps run as a host loop over one compiled step (on CPU) instead of one
  compiled ``lax.scan`` over all of them (elsewhere). XLA:CPU runs a backward pass inside a
  while loop ~4x slower than outside one (gradients of the face ResNet, jax 0.10.2; see
  gradejax.attribution.common.scan_unroll), and a scan cannot be unrolled over hundreds of
  steps; the host loop computes the same steps (the same function of the same inputs)."""
  return jax.default_backend() == 'cpu'


def _run(step, scan, fn, params, key, args, static, settings, st=None):
  """The optimisation: ``scan(fn, params, key, *args, **static)`` (one compiled loop) or, with
  :func:`host_loop`, ``step`` called ``settings.steps`` times from the host, from optimiser
  state ``st`` (None: Adam's initial state of ``params``)."""
  if not host_loop():
    return scan(fn, params, key, *args, **static)
  if st is None:
    # The step's outputs are committed to the device when the network's arrays are (a
    # checkpoint's): the first step's inputs then must be too, or the second step compiles
    # the step again.
    st = optax.adam(settings.learning_rate).init(params)
    if any(getattr(a, 'committed', False) for a in jax.tree.leaves((fn, key))):
      params, st = jax.device_put((params, st), jax.local_devices()[0])
  history = []
  for i in range(settings.steps):
    params, st, scores = step(fn, params, st, key, jnp.int32(i), *args, **static)
    history.append(scores)
  return params, _stack(history)


def render(fn: nets.ModelFn, objective: Objective, param: Param, batch: int, key: Array,
           settings: Settings = Settings(), relu=nn.relu, params: Array | None = None
           ) -> tuple[Array, Array, Array]:
  """Optimises ``batch`` images. Returns (images [B,H,W,3] in [0,1], final params, objective
  history [steps, B]: the per-image score seen at each step). ``params`` overrides the
  initialisation (``param.init(key, batch)``)."""
  k_init, k_run = jax.random.split(key)
  if params is None:
    params = param.init(k_init, batch)
  if settings.grad_blur > 0 and jnp.ndim(params) != 4:
    raise ValueError('grad_blur needs pixel parameters [B,H,W,3]; use image_blur with '
                     f'{param.name} parameters')
  params, history = _run(_step_jit, _optimise_jit, fn, params, k_run, (),
                         dict(objective=objective, param=param, settings=settings, relu=relu),
                         settings)
  return param.image(params), params, history


def render_sharded(fn: nets.ModelFn, objective_for: callable, param: Param, units: np.ndarray,
                   key: Array, settings: Settings = Settings(), relu=nn.relu,
                   devices=None) -> tuple[Array, Array]:
  """Many units on every device: ``units`` is padded to a multiple of the device count (by
  repeating the last), the parameters are sharded on the batch axis over a 1-D mesh, and
  ``objective_for(units)`` builds the batch objective (e.g. ``lambda u:
  objectives.channel_batch(layer, u)``) from the units as a traced int32 array inside the
  compiled program: calls with the same ``objective_for``, ``param`` and ``settings`` objects
  and as many units compile once. Each image's randomness comes from its own key
  (``fold_in(key, unit position)``), so the result does not depend on the device count.
  Returns (images [len(units),H,W,3], history [steps, len(units)])."""
  mesh = distributed.global_mesh('batch', devices)
  n = len(units)
  padded = batching.pad_to_multiple(units, mesh.size)
  shard = NamedSharding(mesh, PartitionSpec('batch'))
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(len(padded)))
  params = jax.vmap(lambda k: param.init(k, 1)[0])(keys)
  if settings.grad_blur > 0 and jnp.ndim(params) != 4:
    raise ValueError('grad_blur needs pixel parameters [B,H,W,3]; use image_blur with '
                     f'{param.name} parameters')
  _, k_run = jax.random.split(key)  # the split render() makes: same images as before
  # Every process computed the same initial params, units, key and network from the same seed
  # and files; each now places only its own shards (the mesh may span several hosts, see
  # gradejax.distributed), and the replicated inputs are global arrays too.
  everywhere = distributed.replicated(mesh)
  # The host loop's optimiser state, placed as its step keeps it (one compiled step).
  st = (jax.tree.map(lambda a: distributed.put(a, shard if np.ndim(a) else everywhere),
                     optax.adam(settings.learning_rate).init(params)) if host_loop() else None)
  params = distributed.put(params, shard)
  key_data, units = distributed.put((jax.random.key_data(k_run), np.asarray(padded, np.int32)),
                                    everywhere)
  k_run = jax.random.wrap_key_data(key_data, impl=jax.random.key_impl(k_run))
  if isinstance(fn, nets.Bound):  # its params become global (replicated) arrays too
    fn = distributed.put(fn, everywhere)
  params, history = _run(_step_units_jit, _optimise_units_jit, fn, params, k_run, (units,),
                         dict(objective_for=objective_for, param=param, settings=settings,
                              relu=relu, shard=shard), settings, st)
  # Only the images leave the devices; in a multi-host run every process receives all of them.
  images, history = distributed.gather((_image(param, params), history))
  return images[:n], history[:, :n]


_image = jax.jit(lambda param, params: param.image(params), static_argnums=0)
