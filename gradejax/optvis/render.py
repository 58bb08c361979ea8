"""The optimisation: the whole run is ONE jit-compiled ``lax.scan`` over steps, batched over
images (one unit per image) and, with :func:`render_sharded`, split over every device.

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


def _optimise(fn, params, key, *, objective, param, settings, relu):
  s = settings
  opt = optax.adam(s.learning_rate)
  grad = jax.grad(_loss, has_aux=True)

  def step(carry, i):
    p, st = carry
    g, scores = grad(p, jax.random.fold_in(key, i), fn, objective, param, s, relu)
    if s.grad_blur > 0:
      g = regularisers.blur(g, s.grad_blur)
    upd, st = opt.update(g, st, p)
    jax.debug.callback(_step_done, i)
    return (optax.apply_updates(p, upd), st), scores

  (params, _), history = jax.lax.scan(step, (params, opt.init(params)), jnp.arange(s.steps))
  return params, history


def _optimise_units(fn, params, key, units, *, objective_for, param, settings, relu):
  # The objective is built from traced units, so a new batch of units of the same size reuses
  # the compiled program instead of baking the units in as constants.
  return _optimise(fn, params, key, objective=objective_for(units), param=param,
                   settings=settings, relu=relu)


_STATIC = ('objective', 'param', 'settings', 'relu')
_STATIC_UNITS = ('objective_for', 'param', 'settings', 'relu')
# A nets.Bound model is a pytree (params are traced arguments: one compile per shape); any other
# callable is static.
_optimise_jit = nets.jit_model_fn(_optimise, _STATIC)
_optimise_units_jit = nets.jit_model_fn(_optimise_units, _STATIC_UNITS)


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
  params, history = _optimise_jit(fn, params, k_run, objective=objective, param=param,
                                  settings=settings, relu=relu)
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
  params = distributed.put(params, shard)
  everywhere = distributed.replicated(mesh)
  key_data, units = distributed.put((jax.random.key_data(k_run), np.asarray(padded, np.int32)),
                                    everywhere)
  k_run = jax.random.wrap_key_data(key_data, impl=jax.random.key_impl(k_run))
  if isinstance(fn, nets.Bound):  # its params become global (replicated) arrays too
    fn = distributed.put(fn, everywhere)
  params, history = _optimise_units_jit(fn, params, k_run, units, objective_for=objective_for,
                                        param=param, settings=settings, relu=relu)
  # Only the images leave the devices; in a multi-host run every process receives all of them.
  images, history = distributed.gather((_image(param, params), history))
  return images[:n], history[:, :n]


_image = jax.jit(lambda param, params: param.image(params), static_argnums=0)
