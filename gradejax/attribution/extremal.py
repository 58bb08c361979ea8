"""Extremal perturbations (Fong, Patrick & Vedaldi, ICCV 2019): the smooth mask of a fixed area
that keeps the class score highest (``'preserve'``) or, removed, lowers it most (``'delete'``).

A map answers "which region of area a does the network need?" by optimisation rather than by
scanning a fixed occluder: the region may take any shape the smoothness allows, so a cue read
from either half (which no single square hides) is kept or removed whole.

For each image and each area ``a`` the mask ``m = generate(p)`` (values in [0, 1]) is found by
maximising ``reward(m) - w_t * mean((sort(m) - r_a)^2)`` over its parameters ``p``, where
``r_a`` is the sorted vector of a binary mask of area ``a`` (0 for the first ``(1 - a) H W``
pixels, 1 after): the rank loss pins the *area* without saying where. ``w_t`` grows
geometrically so the mask ends close to binary. The reward is the target's score (logit or
contrast, :func:`gradejax.attribution.common.class_score`) of the image whose pixels outside
the mask ('preserve') or inside it ('delete') are filled as every perturbation method fills
them (:mod:`gradejax.attribution.fills`: blur by default, or inpaint, or a constant).

Smoothness is torchray's max-convolution parameterisation (:mod:`.extremal_masks`): parameters
on a grid of stride ``step`` px, each node spreading a flat-topped kernel of radius ~``sigma``
px, combined by a smooth max (softmax pooling, coldness 20), so a mask is a union of smooth
discs of radius >= ``sigma / 2`` and reaches 1 inside them (a Gaussian blur of the parameters
would not). The generator reproduces torchray's ``MaskGenerator`` exactly (tested).

All images x areas are optimised together (one network call per step on ``A * B`` perturbed
images): one compiled ``lax.scan`` over the steps on an accelerator, a host loop over one
compiled step on CPU, where XLA runs the backward pass inside a while loop ~2x slower
(:func:`host_loop`; the same steps either way). Two schedules:

- ``optimiser='torchray'`` (with ``reward='raw'``: the parity benchmark's): torchray's SGD
  (momentum 0.9, dampening 0.9, lr 0.01, w_0 = 300 growing 1.0035 per step over 800 steps,
  stretched to ``steps``: fewer steps take proportionally larger strides, ending at the same
  weight), both games starting from params 1, torchray's ``sigma`` 21 px and ``step`` 7.
- the default, for a few dozen steps on a CPU: Adam (lr 0.1, beta1 = momentum) on the
  parameters, projected on [0, 1]; the reward in units of its own starting gradient (per mask,
  its largest push on a parameter is ``reward_scale`` x the rank loss's: torchray's w_0 was set
  for ImageNet logits; a face net's logits are a few units and a fully removed image is no
  unit, it often scores *higher* than the clean one); the rank loss's ties shared
  (:func:`tied_targets`: the plain sort hands the pixels allowed to stay to the last ones in
  raster order, so an undecided mask drifts to the image's bottom rows); both games start from
  the clean image, where the score's gradient is informative; ``sigma`` from the smallest area
  (:func:`smoothness`) and ``step`` = sigma / 3 (torchray's ratio).

Where a mask starts: the clean image, or a map's top regions (``init``, ``start='scan'``,
``starts=K``), is :mod:`gradejax.attribution.extremal_starts`.

Differences from torchray by design: the area is measured on the image (torchray sorts the
mask *with* its ``sigma`` px margin, so its masks cover up to ~1.6x the nominal area of a
150 px chip); the fill is a blend ``x m + fill (1 - m)`` with our fills instead of torchray's
8-level blur pyramid.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gradejax import nets
from gradejax.attribution import fills
# The mask's parameterisation, re-exported: extremal.generate, extremal.mask_geometry, ...
from gradejax.attribution.extremal_masks import (  # noqa: F401
    COLDNESS, MaskGeometry, area_reference, generate, mask_geometry, smoothness, tied_targets)
from gradejax.attribution.extremal_starts import (binary_regions, init_params, keep_best,
                                                 scan_starts, start_regions)
from gradejax.attribution.common import as_targets, class_score, method

Array = jax.Array
VARIANTS = ('preserve', 'delete')
DEFAULT_AREAS = (0.02, 0.05, 0.1, 0.2)
REFERENCE_STEPS = 800  # torchray's schedule, which ``steps`` stretches
REGUL_GROWTH = 1.0035
DEFAULT_STEPS = 60  # the Adam schedule's (see the module docstring)
ADAM_RATE = 0.1
REWARD_SCALE = 8.0
TIE_BREAK = 1e-3  # a start region returned by the guard: 1 - TIE_BREAK .. 1 inside, by its map


def _check(areas, variant, steps):
  if variant not in VARIANTS:
    raise ValueError(f"extremal: variant must be one of {', '.join(VARIANTS)}; got {variant!r}")
  if not areas or any(not 0 < a < 1 for a in areas):
    raise ValueError(f'extremal: areas must be fractions of the image in (0, 1); got {areas!r}')
  if steps < 1:
    raise ValueError(f'extremal: steps must be >= 1; got {steps}')


OPTIMISERS = ('adam', 'torchray')
STARTS = ('clean', 'scan', 'empty')
REWARDS = ('normalised', 'raw')


@dataclasses.dataclass(frozen=True)
class _Game:
  """Every static option of one optimisation (hashable: one compile per distinct game)."""
  areas: tuple[float, ...]
  variant: str
  steps: int
  step: int
  sigma: float
  learning_rate: float
  momentum: float
  regul_weight: float
  jitter: bool
  fill_mode: str
  blur_sigma: float
  score: str
  optimiser: str
  reward: str
  reward_scale: float
  empty: bool


def _closures(fn: nets.ModelFn, images: Array, targets: Array, base: Array, g: _Game):
  """The game's pieces, traced inside each compiled function below: the mask geometry,
  ``scores(masks, flip)`` -> [A, B], ``loss(p, weight, flip, unit)`` and the optimiser's
  ``body(carry, i, unit)`` (one step; carry = (params, first moment, second moment, rank
  loss weight))."""
  b, h, w, c = images.shape
  a = len(g.areas)
  t = as_targets(targets, b)
  geo = mask_geometry((h, w), g.step, g.sigma)
  ref = area_reference(g.areas, h * w)[:, None]  # [A, 1, HW]
  cut = jnp.asarray([int(h * w * (1 - x)) for x in g.areas])[:, None]  # [A, 1] zeros in ref
  stretch = REFERENCE_STEPS / g.steps
  # torchray's SGD takes proportionally larger strides when stretched; Adam's stride is the
  # learning rate itself (per parameter, whatever the gradient's units), so it is not.
  lr = g.learning_rate * stretch if g.optimiser == 'torchray' else g.learning_rate
  growth = REGUL_GROWTH ** stretch
  momentum = g.momentum

  def scores(masks, flip):  # masks [A, B, H, W] -> target scores [A, B]
    removed = 1.0 - masks if g.variant == 'preserve' else masks
    x = fills.apply(images, removed, base, g.fill_mode, g.blur_sigma)  # [A, B, H, W, C]
    if g.jitter:  # the paper's jitter: every other step sees the mirrored image
      x = jnp.where(flip, x[:, :, :, ::-1], x)
    out, _ = fn(x.reshape((a * b, h, w, c)))
    return class_score(jnp.swapaxes(out.reshape(a, b, -1), 0, 1), t, g.score).T

  def loss(p, weight, flip, unit):
    masks = generate(p, geo)
    s = scores(masks, flip)
    reward = (s if g.variant == 'preserve' else -s) * unit
    flat = masks.reshape(a, b, h * w)
    if g.optimiser == 'torchray':
      regul = weight * jnp.mean((jnp.sort(flat, axis=-1) - ref) ** 2, axis=-1)
    else:
      regul = weight * jnp.mean((flat - lax.stop_gradient(tied_targets(flat, cut))) ** 2,
                                axis=-1)
    return jnp.sum(regul - reward), s  # masks do not interact: each gets its own gradient

  def body(carry, i, unit):
    p, buf, sq, weight = carry
    grad, s = jax.grad(loss, has_aux=True)(p, weight, i % 2 == 0, unit)
    if g.optimiser == 'torchray':
      # torch.optim.SGD with dampening = momentum: the first step's buffer is the raw gradient.
      buf = jnp.where(i == 0, grad, momentum * buf + (1 - momentum) * grad)
      p = jnp.clip(p - lr * buf, 0.0, 1.0)
    else:  # Adam (beta1 = momentum, beta2 = 0.999), bias-corrected, projected onto [0, 1]
      buf = momentum * buf + (1 - momentum) * grad
      sq = 0.999 * sq + 0.001 * grad * grad
      k = (i + 1).astype(images.dtype)
      step_ = (buf / (1 - momentum ** k)) / (jnp.sqrt(sq / (1 - 0.999 ** k)) + 1e-8)
      p = jnp.clip(p - lr * step_, 0.0, 1.0)
    return (p, buf, sq, weight * growth), jnp.mean(s, axis=1)

  return geo, scores, loss, body


@method
def _begin(fn: nets.ModelFn, images: Array, targets: Array, init: Array | None, *,
           game: _Game, base: Array) -> tuple[tuple[Array, ...], Array]:
  """The optimiser's first carry and the reward's unit per mask [A, B]."""
  g = game
  a, b = len(g.areas), images.shape[0]
  geo, _, loss, _ = _closures(fn, images, targets, base, g)
  # torchray starts both games from params 1 (preserve: all kept; delete: all removed); the
  # Adam schedule starts both from the clean image, where the score's gradient is informative
  # (on a fully removed image the network is off its data), unless asked to start from it.
  start = 1.0 if (g.variant == 'preserve' or g.optimiser == 'torchray') else 0.0
  if g.empty:  # from the fully removed image: nothing kept ('preserve'), all removed ('delete')
    start = 0.0 if g.variant == 'preserve' else 1.0
  if init is None:
    p0 = jnp.full((a, b) + geo.shape_in, start, images.dtype)
  else:  # from a map's top regions (kept for 'preserve', removed for 'delete')
    p0 = init_params(jnp.asarray(init, images.dtype), g.areas, geo, g.step)
  w0 = jnp.asarray(g.regul_weight, images.dtype)
  if g.reward == 'normalised':
    # The reward in units of its own gradient at the start: per mask, its largest push on a
    # parameter equals reward_scale x the rank loss's largest (one extra forward and backward).
    # The rank loss's weight then means the same for any network's logit units and any
    # image's confidence (a fully removed image is no unit: off its data, it often scores
    # higher than the clean one).
    ones = jnp.ones((a, b), images.dtype)
    g_all = jax.grad(lambda q: loss(q, w0, False, ones)[0])(p0)
    g_reg = jax.grad(lambda q: loss(q, w0, False, 0.0 * ones)[0])(p0)
    peak = lambda v: jnp.max(jnp.abs(v), axis=(-2, -1))  # [A, B]
    unit = g.reward_scale * peak(g_reg) / jnp.maximum(peak(g_all - g_reg), 1e-12)
  else:
    unit = jnp.ones((a, b), images.dtype)
  return (p0, jnp.zeros_like(p0), jnp.zeros_like(p0), w0), unit


@method
def _advance(fn: nets.ModelFn, images: Array, targets: Array, carry: tuple[Array, ...],
             unit: Array, first: Array, *, game: _Game, base: Array, count: int
             ) -> tuple[tuple[Array, ...], Array]:
  """Steps ``first`` .. ``first + count - 1``: one compiled ``lax.scan`` (a single step runs
  straight: JAX lowers even a one-trip scan to a while loop). Returns the carry and the
  history [count, A]."""
  body = functools.partial(_closures(fn, images, targets, base, game)[3], unit=unit)
  if count == 1:
    carry, y = body(carry, first)
    return carry, y[None]
  return lax.scan(body, carry, first + jnp.arange(count))


@method
def _finish(fn: nets.ModelFn, images: Array, targets: Array, params: Array, *, game: _Game,
            base: Array) -> tuple[Array, Array]:
  """The masks [B, A, H, W] and their scores [B, A] (no jitter)."""
  geo, scores, _, _ = _closures(fn, images, targets, base, game)
  masks = generate(params, geo)
  return jnp.transpose(masks, (1, 0, 2, 3)), scores(masks, False).T


def host_loop() -> bool:
  """Whether the steps run as a host loop over one compiled step (on CPU) instead of one
  compiled ``lax.scan`` over all of them (elsewhere): XLA:CPU runs a backward pass inside a
  while loop several times slower than outside one (:func:`gradejax.optvis.render.host_loop`,
  measured for extremal in benchmarks/RESULTS.md, session 15). Both compute the same steps."""
  return jax.default_backend() == 'cpu'


def _optimise(fn: nets.ModelFn, images: Array, targets: Array, init: Array | None,
              game: _Game, fill: float | Array, precision: str | None, loop: bool | None = None
              ) -> tuple[Array, Array, Array]:
  """The whole optimisation: masks [B, A, H, W], scores [B, A], history [steps, A]. ``loop``:
  the host loop (True), the scan (False) or per backend (None: :func:`host_loop`)."""
  # the fill's mask-free part (the blurred images or the constant), once for every step
  base = fills.prepare(images, fill, game.fill_mode, game.blur_sigma)
  kw = dict(game=game, base=base, precision=precision)
  carry, unit = _begin(fn, images, targets, init, **kw)
  if host_loop() if loop is None else loop:
    history = []
    for i in range(game.steps):
      carry, y = _advance(fn, images, targets, carry, unit, jnp.int32(i), count=1, **kw)
      history.append(y)
    history = jnp.concatenate(history)
  else:
    carry, history = _advance(fn, images, targets, carry, unit, jnp.int32(0),
                              count=game.steps, **kw)
  masks, final = _finish(fn, images, targets, carry[0], **kw)
  return masks, final, history


@dataclasses.dataclass(frozen=True)
class ExtremalResult:
  """``masks`` float [B, A, H, W] in [0, 1] (1 = kept for 'preserve', 1 = removed for
  'delete'); ``scores`` float [B, A]: the target score (``score`` units) of each image with its
  mask applied; ``history`` float [steps, A]: the score averaged over images at every step (a
  convergence trace); ``areas``, ``variant`` as asked; ``start_scores`` float [B, K, A] with
  ``starts`` K > 1: the score of each start's final mask made binary at its area
  (:func:`extremal_starts.region_scores`), the best of which was kept. With a start map and
  ``guard`` (the default) the candidates are the K optimised masks and then the K start
  regions themselves (``start_scores`` [B, 2K, A]); ``kept`` int [B, A]: the candidate
  returned (>= K: a start region, which the optimisation did not improve on)."""
  masks: np.ndarray
  scores: np.ndarray
  history: np.ndarray
  areas: tuple[float, ...]
  variant: str
  start_scores: np.ndarray | None = None  # [B, K (or 2K), A]: each candidate's binary score
  kept: np.ndarray | None = None  # [B, A]: the candidate kept (>= K: the start region itself)

  def heatmap(self) -> np.ndarray:
    """One map per image, [B, H, W]: the mean of the masks over the areas (nested masks of
    growing area give a graded map that peaks where the smallest mask sits)."""
    return self.masks.mean(axis=1)


def extremal_perturbation(fn: nets.ModelFn, images: Array, targets: Array, *,
                          areas: Sequence[float] = DEFAULT_AREAS, variant: str = 'preserve',
                          steps: int | None = None, step: int | None = None,
                          sigma: float | None = None,
                          learning_rate: float | None = None, momentum: float = 0.9,
                          regul_weight: float = 300.0, jitter: bool = True,
                          optimiser: str = 'adam', reward: str = 'normalised',
                          reward_scale: float = REWARD_SCALE,
                          fill: float | Array = 0.0, fill_mode: str = 'blur',
                          blur_sigma: float = 10.0, score: str = 'logit',
                          init: Array | None = None, start: str = 'clean',
                          starts: int = 1, guard: bool = True, loop: bool | None = None,
                          precision: str | None = 'highest') -> ExtremalResult:
  """Extremal masks of every image at every area (see the module docstring).

  Args:
    fn: the network (:mod:`gradejax.nets` calling convention); images: [B, H, W, 3] in [0, 1];
      targets: int or int [B], the class explained per image.
    areas: mask areas as fractions of the image; variant: 'preserve' or 'delete'.
    steps: optimisation steps (torchray's 800-step schedule stretched to them); step, sigma:
      the generator's node stride and kernel radius in pixels (torchray's 7 and 21).
    learning_rate, momentum, regul_weight: the SGD schedule at 800 steps and the rank loss's
      initial weight; jitter: mirror the perturbed image every other step (the paper's).
    fill, fill_mode, blur_sigma: what replaces the removed pixels
      (:mod:`gradejax.attribution.fills`); score: 'logit' or 'contrast'.
    init: None (the schedule's start) or maps [B, H, W] (or [A, B, H, W], one per area) to
      start from (:func:`extremal_starts.init_params`: each area's mask starts on the map's
      top regions of that area; e.g. occlusion's).
    start: without ``init``: 'clean' (the schedule's start), 'scan' (each area's mask starts
      where a square of that area removed lowers the score most:
      :func:`extremal_starts.scan_starts`, with the same fill and score) or 'empty' (from the
      fully removed image: the delete game's mask starts at 1 and shrinks, the preserve
      game's at 0 and grows; finds a cue read from either half on a toy, not on the demo's
      network, which is off its data there: benchmarks/RESULTS.md, session 15).
    starts: with a start map (``init`` or ``start='scan'``), how many starts per image and
      area (:func:`extremal_starts.start_regions`: the map's distinct peaks at the area's
      scale). All are optimised in the same compiled loop; each image and area keeps the start
      whose final mask, made binary at its area, scores best
      (:func:`extremal_starts.keep_best`: lowest for 'delete', highest for 'preserve'). The
      optimisation is local: one start refines one region, and a
      cue the start missed stays missed; K starts cost K times the steps' forwards.
    guard: with a start map, each image and area returns its start region itself (the map's
      top share of pixels of that area: 0 outside, within ``TIE_BREAK`` of 1 inside, ordered
      as the map so its maximum is the map's peak) where that plays the game better than the
      optimised mask made binary (:func:`extremal_starts.region_scores`): the optimisation
      is non-convex, and on a cue read from several places its steps can leave a better
      start (``kept`` says where; one extra forward per start region). False: always the
      optimised masks.
    loop: the steps as a host loop over one compiled step (True), as one compiled
      ``lax.scan`` (False) or per backend (None: the host loop on CPU, :func:`host_loop`);
      the same steps either way.

  Memory: each step runs ``A * B`` images through the network with gradients; call it on
  batches of images.
  """
  areas = tuple(float(x) for x in areas)
  if optimiser not in OPTIMISERS:
    raise ValueError(f"extremal: optimiser must be one of {', '.join(OPTIMISERS)}; got "
                     f'{optimiser!r}')
  if reward not in REWARDS:
    raise ValueError(f"extremal: reward must be one of {', '.join(REWARDS)}; got {reward!r}")
  torchray = optimiser == 'torchray'
  steps = (REFERENCE_STEPS if torchray else DEFAULT_STEPS) if steps is None else steps
  learning_rate = ((0.01 if torchray else ADAM_RATE) if learning_rate is None
                   else learning_rate)
  h, w = np.shape(images)[1:3]
  sigma = (21.0 if torchray else smoothness(min(areas), (h, w))) if sigma is None else sigma
  step = (7 if torchray else max(1, round(sigma / 3))) if step is None else step
  _check(areas, variant, steps)
  fills.check_mode(fill_mode)
  if start not in STARTS:
    raise ValueError(f"extremal: start must be one of {', '.join(STARTS)}; got {start!r}")
  one = tuple(np.shape(images)[:3])
  if init is not None and np.shape(init) not in (one, (len(areas),) + one):
    raise ValueError(f'extremal: init must be one map per image, [B, H, W] = {one} (or one '
                     f'per area, [A, B, H, W]); got '
                     f'{tuple(np.shape(init))}')
  if int(starts) != starts or starts < 1:
    raise ValueError(f'extremal: starts must be a positive integer; got {starts!r}')
  if init is None and start == 'scan':
    init = scan_starts(fn, images, targets, areas, fill=fill, fill_mode=fill_mode,
                       blur_sigma=blur_sigma, score=score, precision=precision)
  k = int(starts)
  if k > 1 and init is None:
    raise ValueError("extremal: starts > 1 needs a map to place them: pass init=maps (e.g. "
                     "occlusion's) or start='scan'")
  run_areas = areas * k  # start-major: entry j * A + i is start j at area i
  if k > 1:
    init = start_regions(jnp.asarray(init), areas, k).reshape(
        (k * len(areas),) + tuple(np.shape(images)[:3]))
  game = _Game(areas=run_areas, variant=variant, steps=int(steps), step=int(step),
               sigma=float(sigma), learning_rate=float(learning_rate), momentum=float(momentum),
               regul_weight=float(regul_weight), jitter=bool(jitter), fill_mode=fill_mode,
               blur_sigma=float(blur_sigma), score=score, optimiser=optimiser, reward=reward,
               reward_scale=float(reward_scale), empty=start == 'empty' and init is None)
  masks, final, history = _optimise(fn, jnp.asarray(images), targets,
                                    None if init is None else jnp.asarray(init), game, fill,
                                    precision, loop)
  guarded = guard and init is not None
  if k == 1 and not guarded:
    return ExtremalResult(np.asarray(masks), np.asarray(final), np.asarray(history), areas,
                          variant)
  n = k
  if guarded:  # the start regions themselves as K more candidates, scored as binary regions
    b = len(images)
    maps = jnp.asarray(init, jnp.float32)
    maps = jnp.broadcast_to(maps if maps.ndim == 4 else maps[None], (len(run_areas),) +
                            tuple(np.shape(images)[:3]))
    inside = np.asarray(binary_regions(maps, run_areas)) > 0  # [K * A, B, H, W]
    # Inside the region the start map's order, within 1e-3 of 1 (TIE_BREAK): the region plays
    # the game as the binary one (its score is that one's), and the mask's maximum, where a
    # pointing game reads it, is the start map's peak instead of the region's first pixel.
    m = np.asarray(maps, np.float64)
    hi = np.where(inside, m, -np.inf).max(axis=(2, 3), keepdims=True)
    lo = np.where(inside, m, np.inf).min(axis=(2, 3), keepdims=True)
    graded = 1.0 - TIE_BREAK * (hi - m) / np.maximum(hi - lo, np.finfo(np.float64).tiny)
    regions = np.swapaxes(np.where(inside, graded, 0.0), 0, 1)  # a flat map: all 1 inside
    masks = np.concatenate([np.asarray(masks), regions.astype(np.asarray(masks).dtype)], axis=1)
    final = np.concatenate([np.asarray(final), np.full((b, len(run_areas)), np.nan,
                                                       np.asarray(final).dtype)], axis=1)
    n = 2 * k
  hard, best, (masks, final) = keep_best(fn, images, targets, run_areas * (n // k), n, variant,
                                         masks, final, fill=fill, fill_mode=fill_mode,
                                         blur_sigma=float(blur_sigma), score=score,
                                         precision=precision)
  # a start region kept: its score is its binary score (it was not optimised)
  final = np.where(best >= k, np.take_along_axis(hard, best[:, None], axis=1)[:, 0], final)
  history = np.asarray(history).reshape(-1, k, len(areas)).mean(axis=1)
  return ExtremalResult(masks, final, history, areas, variant, hard, best)


def extremal(fn: nets.ModelFn, images: Array, targets: Array, *,
             areas: Sequence[float] = DEFAULT_AREAS, variant: str = 'preserve',
             steps: int | None = None, step: int | None = None, sigma: float | None = None,
             learning_rate: float | None = None, momentum: float = 0.9,
             regul_weight: float = 300.0, jitter: bool = True, optimiser: str = 'adam',
             reward: str = 'normalised', reward_scale: float = REWARD_SCALE,
             fill: float | Array = 0.0, fill_mode: str = 'blur',
             blur_sigma: float = 10.0, score: str = 'logit', init: Array | None = None,
             start: str = 'clean', starts: int = 1, guard: bool = True,
             precision: str | None = 'highest') -> Array:
  """The registry's map: :func:`extremal_perturbation`'s masks averaged over the areas,
  [B, H, W] in [0, 1] (high = needed, for either variant)."""
  r = extremal_perturbation(fn, images, targets, areas=areas, variant=variant, steps=steps,
                            step=step, sigma=sigma, learning_rate=learning_rate,
                            momentum=momentum, regul_weight=regul_weight, jitter=jitter,
                            optimiser=optimiser, reward=reward, reward_scale=reward_scale,
                            fill=fill, fill_mode=fill_mode, blur_sigma=blur_sigma,
                            score=score, init=init, start=start, starts=starts,
                            guard=guard, precision=precision)
  return jnp.asarray(r.heatmap())


OPTIONS = ('areas', 'variant', 'steps', 'step', 'sigma', 'learning_rate', 'momentum',
           'regul_weight', 'jitter', 'optimiser', 'reward', 'reward_scale', 'fill', 'fill_mode',
           'blur_sigma', 'score', 'start', 'starts', 'guard')
