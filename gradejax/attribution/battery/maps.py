"""The battery's maps: each method's [B, H, W] maps with its sub-config's options, on the shown
images (split over processes) and on the held-out fold (whole batches per process)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from gradejax import errors
from gradejax import batching, distributed, nets, progress
from gradejax.attribution import class_activation, common, registry
from gradejax.attribution.battery.config import Config


# One jitted forward for the shown images' outputs and every call of predicted (an eager call
# compiled each op; a new jax.jit per call of predicted compiled it again for the fold's
# localisation and again for "what the network relies on").
_forward_bound = jax.jit(lambda f, xb: f(xb)[0])
_forward_static = jax.jit(lambda f, xb: f(xb)[0], static_argnums=0)


def tap_order(fn: nets.ModelFn, images: np.ndarray) -> list[str]:
  """Tap names in forward order, as ``nets.tap_order``, read inside a shape-only trace (the
  acts dict is in the order the taps ran until the traced call returns it, which sorts it)
  instead of an eager forward (every op compiled on its own: ~2 s on the face ResNet)."""
  order: list[str] = []

  def names(x):
    out, acts = fn(x)
    order.extend(acts)
    return out

  jax.eval_shape(names, jnp.asarray(images[:1]))
  return order


def forward(fn: nets.ModelFn, x) -> np.ndarray:
  """``fn(x)[0]`` (outputs [B, K]) through the jitted forward :func:`predicted` uses, so one
  program per batch shape serves both (an eager call compiled every op of the network)."""
  f = _forward_bound if isinstance(fn, nets.Bound) else _forward_static
  return np.asarray(f(fn, x))


def default_layer(fn: nets.ModelFn, images: np.ndarray, min_side: int = 7) -> str:
  """The last tap (in forward order) holding a spatial map [B, h, w, C] with h, w >= min_side:
  Grad-CAM's usual choice, the deepest layer that still has a usable map (the face net's
  level2, 8x8; its 4x4 and 2x2 levels would paint a few blocks). Falls back to the last
  spatial tap."""
  shapes = nets.activation_shapes(fn, images[:1])
  spatial = [k for k in tap_order(fn, images) if len(shapes[k]) == 4]
  if not spatial:
    raise errors.OptionError('the network taps no spatial feature map; pass --layer')
  usable = [k for k in spatial if min(shapes[k][1:3]) >= min_side]
  return (usable or spatial)[-1]


_OCCLUSION = ('occlusion', 'occlusion_multiscale')  # methods whose chunk is occluder positions


class Inputs:
  """The keyword arguments of ``registry.compute`` per method: the method's sub-config plus
  the inputs it needs (layer, key, CAM's head weights), each derived once per network."""

  def __init__(self, cfg: Config, layer: str):
    self.cfg, self.layer = cfg, layer
    self._weights: dict[int, Any] = {}  # id(fn) -> CAM weights (the head is fixed per fn)

  def __call__(self, name: str, fn: nets.ModelFn, x) -> dict[str, Any]:
    m = registry.get(name)
    kw: dict[str, Any] = dict(self.cfg.method_options.get(name, {}), precision=self.cfg.precision)
    if 'patch' in kw:  # a patch larger than the image is the image
      kw['patch'] = min(kw['patch'], *x.shape[1:3])
    if name in _OCCLUSION and self.cfg.occlusion_batch and 'chunk' not in kw:
      # positions per call: the same forwards in a rolled loop, batched for speed only
      kw['chunk'] = max(1, self.cfg.occlusion_batch // max(len(x), 1))
    elif name in _OCCLUSION and 'unroll' not in kw:
      # The library's chunk, unrolled on a CPU: its forwards run ~1.35x faster there than in a
      # rolled loop (Config.occlusion_batch), and the report reuses the program per batch.
      kw['unroll'] = common.scan_unroll(None)
    # XRAI passes layer and key on to its base method.
    if m.needs_layer or name == 'xrai':
      kw['layer'] = self.layer
    if m.needs_key or name == 'xrai':
      kw['key'] = jax.random.key(self.cfg.seed)
    if m.needs_weights:
      if id(fn) not in self._weights:
        self._weights[id(fn)] = (fn, class_activation.linear_head_weights(
            fn, x, self.cfg.cam_pooled, key=jax.random.key(self.cfg.seed)))
      kw['weights'] = self._weights[id(fn)][1]
    return kw

  def heatmap_fn(self, name: str) -> Callable:
    """(fn, images, targets) -> [B, H, W] maps of method ``name`` (for sanity checks)."""
    return lambda fn, x, t: registry.heatmap(name, fn, x, t, **self(name, fn, x))


def heatmap_fn(name: str, opts, layer: str) -> Callable:
  """(fn, images, targets) -> [B, H, W] maps of method ``name`` with the battery's options
  ``opts`` (:class:`~gradejax.attribution.battery.config.Options`) at tap ``layer``."""
  return Inputs(opts.config(), layer).heatmap_fn(name)


def shown_maps(fn, x, targets, cfg: Config, inputs: Inputs) -> tuple[dict, dict]:
  """Each method's maps [B, H, W] (method -> array) and the methods skipped (-> why).

  In a multi-host run (gradejax.distributed) each process computes its contiguous share of
  the images and the shares are gathered in order, so the maps are a single process's. Methods
  drawing random numbers (``needs_key``: SmoothGrad) draw them for the whole batch's shape, so
  a share would get other noise: every process computes those on all images instead."""
  maps, skipped = {}, {}
  share = distributed.split(len(x))
  with progress.task('report: maps of the shown images', len(cfg.methods),
                     unit='methods') as p:
    for m in cfg.methods:
      # One process, fewer images than processes (a share would be empty), or a key: no split.
      whole = (len(x) < jax.process_count() or jax.process_count() == 1
               or registry.get(m).needs_key)
      xs, ts = (x, targets) if whole else (x[share], targets[share])
      try:
        h = np.asarray(registry.heatmap(m, fn, xs, ts, **inputs(m, fn, xs)))
        maps[m] = h if whole else distributed.gather_rows(h, len(x))
      except ValueError as e:  # raised alike in every process (it depends on the net, not on x)
        skipped[m] = str(e)
        logging.warning('method %s skipped: %s', m, e)
      p.update()
  return maps, skipped


def predicted(fn, x: np.ndarray, batch: int) -> np.ndarray:
  """The predicted class per image, int32 [B], ``batch`` images per call."""
  # A nets.Bound's params are a traced pytree: one compile per shape for every network.
  return np.concatenate([np.argmax(forward(fn, x[i:i + batch]), axis=1)
                         for i in range(0, len(x), batch)]).astype(np.int32)


def fold_maps(name: str, fn, x: np.ndarray, targets: np.ndarray, batch: int, inputs: Inputs,
              tick: Callable[[], None] = lambda: None) -> np.ndarray:
  """[B, H, W] maps of method ``name``, ``batch`` images per call (same options as the
  per-image maps); ``tick()`` after each call.

  A short last batch is padded to ``batch`` (its last image repeated, the extra maps dropped)
  so that it reuses the full batches' compiled program instead of compiling another; not for
  methods whose random draws depend on the batch's shape (they keep their own)."""
  m = registry.get(name)
  pad = len(x) > batch and not m.needs_key and name != 'xrai'
  out = []
  for i in range(0, len(x), batch):
    xb, tb = np.asarray(x[i:i + batch]), np.asarray(targets[i:i + batch])
    k = len(xb)
    if pad and k < batch:
      xb, tb = batching.pad_to_multiple(xb, batch), batching.pad_to_multiple(tb, batch)
    out.append(np.asarray(registry.heatmap(name, fn, xb, tb, **inputs(name, fn, xb)))[:k])
    tick()
  return np.concatenate(out)


def fold_predictions_and_maps(fn, x, cfg: Config, inputs: Inputs, methods: Sequence[str]
                              ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """:func:`predicted` and :func:`fold_maps` of every method over ``x`` [N, H, W, 3]; in a
  multi-host run each process takes whole batches of ``cfg.batch`` (so each call sees the
  images, shapes and PRNG draws it has in one process) and reads only those images; the rows
  are gathered to every process."""
  n = len(x)
  here = distributed.batch_split(n, cfg.batch)
  xs = np.asarray(x[here])
  ts = predicted(fn, xs, cfg.batch) if len(xs) else np.zeros((0,), np.int32)
  targets = distributed.gather_rows(ts, n)
  maps = {}
  calls = -(-len(xs) // cfg.batch)
  # One progress task per method: a batch of occlusion costs ~50x one of saliency, so an ETA
  # counted over all methods' batches together would be wrong by that much.
  for j, m in enumerate(methods):
    with progress.task(f'report: maps of the held-out fold, {m} (method {j + 1}/'
                       f'{len(methods)})', calls, unit='batches') as p:
      h = (fold_maps(m, fn, xs, ts, cfg.batch, inputs, p.update) if len(xs) else
           np.zeros((0,) + tuple(x.shape[1:3]), np.float32))
    maps[m] = distributed.gather_rows(h, n)
  return targets, maps
