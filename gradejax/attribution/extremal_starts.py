"""Where extremal perturbation's masks start (:mod:`gradejax.attribution.extremal`).

A start from a map (``init``, :func:`init_params`; measured on the demo with the report's
occlusion map, benchmarks/demo_extremal.py --init occlusion): each area's mask starts on the
map's top regions of that area, coarse to fine. The delete game's gradient from the clean image
is local, and a cue read from either half of it (removing half changes little) is invisible to
it; a scan of whole regions sees that (:func:`scan_starts`: a square of each mask's own area),
and the optimisation then refines the region's shape at the fixed area.

A start that sits on the wrong region stays there, so ``starts=K`` optimises K starts per image
and area (the map's distinct peaks at the area's scale, :func:`start_regions`) in the same loop
and keeps the one whose mask, made binary at its area, scores best (:func:`region_scores`,
:func:`keep_best`): a multi-start search for the extremal region, at K times the cost. (On the
sticker demo it did not help: its starts' regions, 40 steps on, were no better than one
start's; benchmarks/RESULTS.md, session 12.) The battery does not pass a start map yet (a hook:
its occlusion maps of the fold, computed once, as ``init``).

The optimisation can also leave a good start: the objective is not convex, and where a cue is
read from several places a step off the start's region costs nothing locally. So with a start
map each image and area also scores the start region itself (the map's top share of pixels,
binary: :func:`binary_regions`) and returns it where it plays the game better than the
optimised mask made binary (``guard``, on by default: :func:`keep_best` over the optimised
masks and the starts).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gradejax import nets
from gradejax.attribution import fills
from gradejax.attribution.common import as_targets, class_score, method

Array = jax.Array
if TYPE_CHECKING:
  from gradejax.attribution.extremal_masks import MaskGeometry


def init_params(init: Array, areas: Sequence[float], geometry: MaskGeometry, step: int
                ) -> Array:
  """Start parameters from a map: for each area ``a``, 1 on the nodes whose cell holds one of
  the map's top ``a`` share of pixels, 0 elsewhere. ``init`` [B, H, W] (any real map, high =
  important, e.g. the occlusion drop) or one map per area [A, B, H, W] (:func:`scan_starts`)
  -> [A, B, h_in, w_in] in {0, 1}.

  A coarse-to-fine start: a map that scans every region (occlusion) finds where removing a
  whole region matters, which a gradient from the clean image cannot see when the network
  reads a cue from either half (removing half of it changes little); the optimisation then
  refines that region's shape at the fixed area."""
  if init.ndim == 4 and init.shape[0] != len(areas):
    raise ValueError(f'extremal: per-area start maps [A, B, H, W] need A = {len(areas)} '
                     f'areas; got {init.shape[0]}')
  per_area = init if init.ndim == 4 else jnp.broadcast_to(init, (len(areas),) + init.shape)
  b, h, w = per_area.shape[1:]
  hi, wi = geometry.shape_in
  half = step // 2
  out = []
  for a, m in zip(areas, per_area):
    k = max(1, int(round(a * h * w)))
    srt = jnp.sort(m.reshape(b, h * w), axis=-1)
    region = (m >= srt[:, h * w - k][:, None, None]).astype(m.dtype)  # [B, H, W]
    # max over each node's cell, the step x step pixels centred on it (node i at px step i)
    padded = jnp.pad(region, ((0, 0), (half, hi * step - h + step), (half, wi * step - w + step)))
    cells = padded[:, :hi * step, :wi * step].reshape(b, hi, step, wi, step)
    out.append(cells.max(axis=(2, 4)))
  return jnp.stack(out)


def scan_side(area: float, shape: tuple[int, int]) -> int:
  """The side (px) of the square of ``area`` (a fraction) of an image of ``shape``."""
  return int(min(max(1, round(math.sqrt(area * shape[0] * shape[1]))), *shape))


def scan_starts(fn: nets.ModelFn, images: Array, targets: Array, areas: Sequence[float], *,
                fill: float | Array = 0.0, fill_mode: str = 'blur', blur_sigma: float = 10.0,
                score: str = 'logit', chunk: int = 16, precision: str | None = 'highest'
                ) -> Array:
  """One start map per area, [A, B, H, W]: an occlusion scan with a square of that area (side
  :func:`scan_side`, stride a third of it), each pixel the mean drop of the squares covering
  it, so a mask of area ``a`` starts on the region whose removal, as one square of area ``a``,
  lowers the target score most (:func:`init_params` takes its top ``a`` share).

  Why each area its own square: the delete game's gradient from the clean image is local, and
  a cue the network reads from either half of it is invisible to it (removing half changes
  little); a scan finds it only with a square that hides all of it. A fixed small square (the
  report's occlusion) cannot for a cue larger than itself; the scan at each mask's own area
  can whenever the mask can hide the cue at all. Costs ``sum((H - s) / (s / 3) + 1)^2``
  forwards per image over the areas' sides ``s`` (about 560 at 2, 5, 10, 20% of 150 px)."""
  from gradejax.attribution import occlusion_sensitivity as occ
  h, w = np.shape(images)[1:3]
  out = []
  for a in areas:
    side = scan_side(a, (h, w))
    stride = max(1, side // 3)
    out.append(occ.occlusion(fn, images, targets, patch=side, stride=stride, fill=fill,
                             chunk=chunk, fill_mode=fill_mode, blur_sigma=blur_sigma,
                             aggregate='mean', score=score, precision=precision))
  return jnp.stack(out)


def start_regions(init: Array, areas: Sequence[float], starts: int) -> Array:
  """``starts`` distinct start maps per area from one map: [K, A, B, H, W] for
  :func:`init_params`. ``init`` [B, H, W] or [A, B, H, W] (high = important).

  Start k sits at the map's k-th peak after non-maximum suppression at the area's scale: each
  peak found blanks the square of twice the side of a square of that area (:func:`scan_side`)
  around it, so the next start is another region, not the same one shifted. Start k's map is
  the map itself inside that square around its peak and, outside it, below every value inside
  and falling with the (Chebyshev) distance from the peak, so its top ``a`` share (what
  :func:`init_params` keeps) is the map's shape near that peak, grown as a square if the
  window holds fewer pixels."""
  per_area = init if init.ndim == 4 else jnp.broadcast_to(init, (len(areas),) + init.shape)
  _, b, h, w = per_area.shape
  yy, xx = jnp.mgrid[:h, :w]
  out = []
  for a, m in zip(areas, per_area):
    side = scan_side(a, (h, w))
    m = m.astype(jnp.float32)
    low = jnp.min(m, axis=(1, 2), keepdims=True) - 1.0
    live, cands = m, []
    for _ in range(starts):
      flat = jnp.argmax(live.reshape(b, -1), axis=1)
      py, px = (flat // w)[:, None, None], (flat % w)[:, None, None]
      dist = jnp.maximum(jnp.abs(yy - py), jnp.abs(xx - px)).astype(jnp.float32)
      near = dist < side
      cands.append(jnp.where(near, m, low - dist))
      live = jnp.where(near, -jnp.inf, live)
    out.append(jnp.stack(cands))  # [K, B, H, W]
  return jnp.stack(out, axis=1)


def _top_pixels(m: Array, kk) -> Array:
  """The ``kk`` highest pixels of each map ``m`` [B, H, W] (ties broken by position, raster
  order first) -> bool [B, H, W] with exactly ``kk`` True per map."""
  b, h, w = m.shape
  order = jnp.argsort(-m.reshape(b, h * w), axis=-1, stable=True)
  rank = jnp.argsort(order, axis=-1)  # each pixel's rank
  return (rank < kk).reshape(b, h, w)


def binary_regions(maps: Array, areas: Sequence[float]) -> Array:
  """Each map's region of its area: ``maps`` [N, B, H, W] (map n of area ``areas[n]``) ->
  float {0, 1} [N, B, H, W], the top ``areas[n]`` share of pixels (exactly that many, ties
  broken by position: the region :func:`region_scores` scores)."""
  h, w = maps.shape[2:]
  return jnp.stack([_top_pixels(m, max(1, int(round(a * h * w)))) for m, a in zip(maps, areas)]
                   ).astype(jnp.float32)


@method
def region_scores(fn: nets.ModelFn, images: Array, targets: Array, masks: Array, *,
                  areas: tuple[float, ...], variant: str, fill: float | Array,
                  fill_mode: str, blur_sigma: float, score: str) -> Array:
  """The target score of each image with each mask made binary at its area: masks
  [N, B, H, W] (mask n of area ``areas[n]``), its top ``areas[n]`` share of pixels the region
  (exactly that many pixels, ties broken by position; removed for 'delete', kept for
  'preserve') -> [N, B]. How starts are compared: a soft mask may still exceed its area after
  a few dozen steps (a plateau at 1 larger than the area), and its score would reward that."""
  n, b, h, w = masks.shape
  t = as_targets(targets, b)
  base = fills.prepare(images, fill, fill_mode, blur_sigma)
  k = jnp.asarray([max(1, int(round(x * h * w))) for x in areas])

  def one(args):
    m, kk = args  # [B, H, W], the region's pixels
    region = _top_pixels(m, kk).astype(images.dtype)  # exactly kk pixels
    removed = 1.0 - region if variant == 'preserve' else region
    out, _ = fn(fills.apply(images, removed, base, fill_mode, blur_sigma)[0])
    return class_score(out, t, score)

  return lax.map(one, (masks, jnp.broadcast_to(k, (n,))))


def keep_best(fn: nets.ModelFn, images: Array, targets: Array, run_areas: tuple[float, ...],
              k: int, variant: str, masks: Array, final: Array, **kw
              ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
  """Of K candidates, each image's and area's best: ``masks`` [B, K * A, H, W] and
  ``final`` [B, K * A] candidate-major (entry j * A + i: candidate j at area i of
  ``run_areas``) -> (each candidate's binary score [B, K, A] (:func:`region_scores` with
  ``kw``), the index [B, A] of the one kept, (masks [B, A, H, W], final [B, A]) of the one
  scoring lowest for 'delete', highest for 'preserve'; ties: the first)."""
  b, a = len(images), len(run_areas) // k
  hard = region_scores(fn, jnp.asarray(images), targets, jnp.swapaxes(masks, 0, 1),
                       areas=run_areas, variant=variant, **kw)
  hard = np.asarray(hard).T.reshape(b, k, a)
  best = np.argmax(hard, axis=1) if variant == 'preserve' else np.argmin(hard, axis=1)

  def pick(v):
    v = np.asarray(v).reshape((b, k, a) + np.shape(v)[2:])
    return np.take_along_axis(v, best.reshape((b, 1, a) + (1,) * (v.ndim - 3)), axis=1)[:, 0]

  return hard, best, (pick(masks), pick(final))
