"""The harmonised re-test: equalise the photos' acquisition conditions, re-score the CNN.

An intervention, not a regression: every chip is changed so that one acquisition condition no
longer differs between students, the CNN's features are recomputed from the changed chips
(one batched pass per harmonisation), and the same head is scored with the same folds and the
same label permutations as on the original chips. If the signal falls to chance when one
condition is equalised, that condition carried it (docs/BASELINES.md).

Harmonisations (:data:`KINDS`), each alone and all together (``'all'``, applied in the order
resolution -> colour -> background -> jpeg, so every chip ends with the same encoding):

* ``resolution``: every chip brought to the lowest effective resolution in the data (the
  side, in photo pixels, of the smallest chip footprint: resampled down to it and back up),
  then blurred per chip until its sharpness (mean squared Laplacian) is at most the lowest
  sharpness among the chips;
* ``colour``: each chip's per-channel mean and standard deviation inside the face mask set to
  the pooled values of all chips (global brightness, colour cast, contrast);
* ``background``: pixels outside a fixed face ellipse replaced by mid-grey;
* ``jpeg``: every chip re-encoded at one JPEG quality, the lowest in the data.

The face mask is one ellipse for every chip, placed from the alignment template's eye and nose
positions (faces.template_points): the same for every photo, so the mask itself can carry no
label information, and general (nothing in it knows a planted cue).
"""
from __future__ import annotations

import io
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from gradejax import imageops
from gradejax.evaluation import crossval

KINDS = ('colour', 'jpeg', 'resolution', 'background')
ORDER = ('resolution', 'colour', 'background', 'jpeg')  # 'all': the final encoding is shared
DESCRIPTIONS = {
    'colour': 'colour/brightness normalised per chip',
    'jpeg': 're-encoded at one JPEG quality (the lowest in the data)',
    'resolution': 'one resolution and sharpness (the lowest in the data)',
    'background': 'background replaced by a constant',
    'all': 'all four harmonisations together',
}
# 'faces' needs the fully harmonised signal to keep at least this share of the original's
# distance from chance (docs/BASELINES.md argues 0.5); a harmonisation alone that leaves less
# is said to remove the signal (most of it), as one that brings it to chance.
DEFAULT_MIN_RETAINED = 0.5
DEFAULT_JPEG_QUALITY = 50  # when no photo's quality is known (PNG sources, old prepare)
_SIGMAS = (0.0, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)  # blur grid for the sharpness match
_blur = jax.jit(imageops.gaussian_blur, static_argnames=('sigma', 'edge'))


def face_mask(size: int = 150) -> np.ndarray:
  """bool [size, size]: the fixed face ellipse, from the 5-point alignment template (eye corners
  and nose base). Centre between the eyes, 0.45 eye spans below them; semi-axes 0.72 and 0.98
  eye spans (forehead to chin, temple to temple of a frontal face)."""
  from gradejax.data import faces
  t = faces.template_points(size)
  span = t[:4, 0].max() - t[:4, 0].min()
  cx, cy = t[:4, 0].mean(), t[:4, 1].mean() + 0.45 * span
  yy, xx = np.mgrid[0:size, 0:size] + 0.5
  return ((xx - cx) / (0.72 * span)) ** 2 + ((yy - cy) / (0.98 * span)) ** 2 <= 1.0


def sharpness(x: jax.Array) -> jax.Array:
  """float [N]: mean squared 4-neighbour Laplacian of the grey chips ``x`` [N, H, W, 3] in
  [0, 1] (as :func:`gradejax.data.photo_quality.sharpness`, batched)."""
  g = x @ jnp.array([0.299, 0.587, 0.114], x.dtype)
  lap = g[:, 1:-1, :-2] + g[:, 1:-1, 2:] + g[:, :-2, 1:-1] + g[:, 2:, 1:-1] - 4 * g[:, 1:-1, 1:-1]
  return jnp.mean(lap ** 2, axis=(1, 2))


_sharpness = jax.jit(sharpness)
_mid_sharpness = jax.jit(lambda a, b: sharpness(0.5 * (a + b)))  # of the midpoint blend


def spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Radially averaged power spectra of the grey chips ``x`` float [N, S, S, 3]: (frequencies
  [F] in cycles per chip pixel, bins of 1/S up to 0.5; power float [N, F]). Each chip's mean
  is removed and a 2-D Hann window applied first (no edge leakage)."""
  g = x @ np.array([0.299, 0.587, 0.114], np.float32)
  n, s = g.shape[:2]
  w = np.hanning(s).astype(np.float32)
  g = (g - g.mean((1, 2), keepdims=True)) * (w[:, None] * w[None, :])
  p = np.abs(np.fft.fft2(g)) ** 2
  f = np.fft.fftfreq(s)
  r = np.hypot(f[:, None], f[None, :])
  b = np.minimum(np.round(r * s).astype(int), s // 2)
  count = np.bincount(b.ravel(), minlength=s // 2 + 1)
  power = np.stack([np.bincount(b.ravel(), pi.ravel(), s // 2 + 1) for pi in p]) / count
  return np.arange(s // 2 + 1) / s, power


def cutoffs(x: np.ndarray, drop: float = 0.5, low: tuple[float, float] = (0.02, 0.06)
            ) -> np.ndarray:
  """float [N]: each chip's effective cutoff in cycles per pixel: the lowest frequency above
  the ``low`` band where its power spectrum, normalised by its own power in that band (so
  contrast does not count), falls below ``drop`` times the chips' median normalised
  spectrum (3-bin running mean); 0.5 (Nyquist) where it never does. A blurred, downsampled
  or strongly compressed chip has lost its high frequencies relative to the others."""
  f, p = spectrum(x)
  band = (f >= low[0]) & (f <= low[1])
  norm = p / np.maximum(p[:, band].mean(1, keepdims=True), 1e-20)
  ratio = norm / np.maximum(np.median(norm, 0), 1e-20)
  k = np.ones(3) / 3
  ratio = np.stack([np.convolve(r, k, 'same') for r in ratio])
  below = (ratio < drop) & (f > low[1])[None]
  first = np.where(below.any(1), below.argmax(1), len(f) - 1)
  return f[first]


def lowpass_sigma(cutoff: float) -> float:
  """Gaussian sigma (pixels) whose amplitude response is 1/2 at ``cutoff`` cycles/pixel: the
  common low-pass puts every chip's band edge at or below the lowest in the data."""
  return float(np.sqrt(np.log(2) / 2) / (np.pi * max(cutoff, 1e-3)))


def common_sigma(images: np.ndarray) -> float:
  """The common low-pass's sigma for uint8 or [0, 1] chips [N, S, S, 3]: at the lowest
  effective cutoff among them (:func:`cutoffs`)."""
  x = np.asarray(images, np.float32)
  x = x / 255.0 if x.max() > 1.0 else x
  return lowpass_sigma(float(cutoffs(x).min()))


def contrast(x: jax.Array, mask: np.ndarray) -> jax.Array:
  """float [N]: the grey variance of chips ``x`` [N, H, W, 3] inside ``mask`` [H, W]."""
  g = x @ jnp.array([0.299, 0.587, 0.114], x.dtype)
  return jnp.maximum(jnp.var(g[:, mask], axis=1), 1e-8)


def relative_sharpness(x: jax.Array, mask: np.ndarray, var: jax.Array | None = None
                       ) -> jax.Array:
  """float [N]: :func:`sharpness` over the chip's contrast (:func:`contrast`, or ``var`` [N]:
  the unblurred chip's, so that blurring lowers it monotonically): invariant to the chip's
  contrast and brightness (a brighter, higher-contrast chip is not 'sharper')."""
  return sharpness(x) / (contrast(x, mask) if var is None else var)


def resolution(x: np.ndarray, side: int | None, sigma: float = 0.0,
               mask: np.ndarray | None = None) -> np.ndarray:
  """Chips ``x`` float [N, S, S, 3] at one resolution and sharpness: down to ``side`` pixels
  (antialiased) and back up when ``side < S``; then one common Gaussian low-pass of
  ``sigma`` pixels for every chip (:func:`common_sigma`: the lowest effective cutoff in the
  data, whatever blur, resampling or compression caused it); then each chip brought to the
  lowest relative sharpness (:func:`relative_sharpness`, inside ``mask``) of all chips:
  blended between the two blurs of a sigma grid that bracket it (the blend's sharpness is
  quadratic in the weight, fitted through the two blurs and their midpoint)."""
  n, s = x.shape[0], x.shape[1]
  mask = face_mask(s) if mask is None else mask
  xj = jnp.asarray(x, jnp.float32)
  var = contrast(xj, mask)  # the chip's own contrast, before any blur
  if side is not None and 4 <= side < s:
    small = jax.image.resize(xj, (n, side, side, 3), 'linear', antialias=True)
    xj = jax.image.resize(small, (n, s, s, 3), 'linear')
  if sigma > 0:
    xj = _blur(xj, sigma=float(sigma), edge='edge')
  measure = jax.jit(lambda v: relative_sharpness(v, mask, var))
  sharp = [np.asarray(measure(xj))]
  target = float(sharp[0].min())
  for sig in _SIGMAS[1:]:  # a few whole-batch blurs instead of one search per chip
    sharp.append(np.asarray(measure(_blur(xj, sigma=sig, edge='edge'))))
    if (sharp[-1] <= target).all():
      break
  sharp = np.stack(sharp)  # [K, N], decreasing in K
  k = np.clip((sharp > target).sum(0) - 1, 0, len(sharp) - 2)  # sharp[k] > target >= [k+1]
  # Every blur and measure below runs on the whole batch, and each level's chips are taken
  # from it: the programs keep the batch's shape (one compile each, the same as the search
  # loop's) instead of one per level's chip count. At most two levels' blurs are kept.
  var_np = np.asarray(var)
  blurred: dict[int, jax.Array] = {}

  def at(level: int) -> jax.Array:
    if level not in blurred:
      for old in [j for j in blurred if j < level - 1]:
        del blurred[old]
      blurred[level] = _blur(xj, sigma=_SIGMAS[level], edge='edge') if level else xj
    return blurred[level]

  out = np.zeros_like(np.asarray(xj))
  for level in np.unique(k):
    idx = np.flatnonzero(k == level)
    a_all, b_all = at(level), at(level + 1)
    a_img, b_img = np.asarray(a_all)[idx], np.asarray(b_all)[idx]
    s0, s1 = sharp[level, idx], sharp[level + 1, idx]
    sm = np.asarray(_mid_sharpness(a_all, b_all))[idx] / var_np[idx]
    # S(w) = c0 + c1 w + c2 w^2 through (0, s0), (0.5, sm), (1, s1); solve S(w) = target.
    c2 = 2 * (s0 + s1 - 2 * sm)
    c1 = s1 - s0 - c2
    c0 = s0 - target
    disc = np.sqrt(np.maximum(c1 ** 2 - 4 * c2 * c0, 0))
    with np.errstate(divide='ignore', invalid='ignore'):
      w = np.where(np.abs(c2) > 1e-12, (-c1 - disc) / (2 * c2), -c0 / c1)
      w2 = np.where(np.abs(c2) > 1e-12, (-c1 + disc) / (2 * c2), w)
    w = np.where((w >= 0) & (w <= 1), w, w2)
    w = np.clip(np.nan_to_num(w, nan=1.0), 0, 1).astype(np.float32)
    out[idx] = (1 - w)[:, None, None, None] * a_img + w[:, None, None, None] * b_img
  return out


def colour(x: np.ndarray, mask: np.ndarray, method: str = 'quantile',
           levels: int = 64) -> np.ndarray:
  """Chips ``x`` float [N, H, W, 3] in [0, 1] with each chip's colour distribution inside
  ``mask`` [H, W] mapped onto the pooled one of all chips, per channel.

  ``method`` 'quantile' (the default): per chip and channel, the monotone map that sends the
  chip's ``levels`` quantiles inside the mask to the pooled quantiles there (piecewise
  linear, applied to every pixel of the chip): the whole per-channel histogram becomes the
  pooled one, so a gain, an offset, a tone curve (gamma) or clipping is undone, not only the
  mean and sd. 'moments': the mean and sd only (kept to measure what quantiles add)."""
  px = x[:, mask]  # [N, M, 3]
  if method == 'moments':
    mean, sd = px.mean(1), px.std(1) + 1e-6
    target_mean, target_sd = px.mean((0, 1)), px.reshape(-1, 3).std(0)
    z = (x - mean[:, None, None]) / sd[:, None, None]
    return np.clip(z * target_sd + target_mean, 0.0, 1.0)
  if method != 'quantile':
    raise ValueError(f"colour method must be 'quantile' or 'moments'; got {method!r}")
  q = np.linspace(0, 1, levels)
  own = np.quantile(px, q, axis=1)  # [L, N, 3]
  target = np.quantile(px.reshape(-1, 3), q, axis=0)  # [L, 3]
  out = np.empty_like(x)
  for i in range(len(x)):
    for c in range(3):
      src = own[:, i, c] + np.arange(levels) * 1e-7  # strictly increasing for np.interp
      out[i, ..., c] = np.interp(x[i, ..., c], src, target[:, c])
  return np.clip(out, 0.0, 1.0)


def background(x: np.ndarray, mask: np.ndarray, value: float = 0.5) -> np.ndarray:
  """Chips with every pixel outside ``mask`` [H, W] set to ``value``."""
  return np.where(mask[None, :, :, None], x, np.float32(value))


def jpeg(x: np.ndarray, quality: int) -> np.ndarray:
  """Chips re-encoded (PIL, 4:2:0 as Pillow's default) at JPEG ``quality`` and decoded."""
  out = []
  for chip in np.round(np.clip(x, 0, 1) * 255).astype(np.uint8):
    buf = io.BytesIO()
    Image.fromarray(chip).save(buf, format='JPEG', quality=int(quality))
    out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert('RGB')))
  return np.stack(out).astype(np.float32) / 255.0


def harmonise(images: np.ndarray, kinds: tuple[str, ...], *, side: int | None,
              quality: int, mask: np.ndarray | None = None, sigma: float | None = None,
              colour_method: str = 'quantile', resolved: np.ndarray | None = None
              ) -> np.ndarray:
  """uint8 chips [N, S, S, 3] with the harmonisations ``kinds`` applied in :data:`ORDER`.

  ``resolved``: :func:`resolution` of these images with the same ``side``, ``sigma`` and
  ``mask``, computed once by the caller ('resolution' comes first in :data:`ORDER`, so the
  re-test's 'resolution' and 'all' start from the same float chips).

  ``sigma``: the common low-pass (None: :func:`common_sigma` of ``images``), used by
  'resolution' and, when 'resolution' is not applied, by 'jpeg' before its encoding (so the
  original compression's blocks and ringing are filtered out before the common re-encode,
  instead of surviving it as double-compression traces)."""
  unknown = set(kinds) - set(KINDS)
  if unknown:
    raise ValueError(f'unknown harmonisation {sorted(unknown)}; use some of {", ".join(KINDS)}')
  x = np.asarray(images, np.float32) / 255.0
  mask = face_mask(x.shape[1]) if mask is None else mask
  if sigma is None and ('resolution' in kinds or 'jpeg' in kinds):
    sigma = common_sigma(x)
  for k in ORDER:
    if k not in kinds:
      continue
    if k == 'resolution':
      x = resolution(x, side, sigma, mask) if resolved is None else resolved
    elif k == 'colour':
      x = colour(x, mask, colour_method)
    elif k == 'background':
      x = background(x, mask)
    else:
      if 'resolution' not in kinds and sigma:
        x = np.asarray(_blur(jnp.asarray(x), sigma=float(sigma), edge='edge'))
      x = jpeg(x, quality)
  return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def settings(quality: dict[str, np.ndarray] | None, footprint: np.ndarray | None,
             chip_size: int) -> dict[str, Any]:
  """The common targets from the data: ``quality`` maps photo_quality columns to [N] arrays
  (``jpeg_quality``, ``format_jpeg``); ``footprint`` [N] each chip's side in photo pixels
  (chip side / the chip affine's scale). Returns {'jpeg_quality', 'side'} (side None: every
  chip already has at least chip_size photo pixels)."""
  q = DEFAULT_JPEG_QUALITY
  if quality is not None and 'jpeg_quality' in quality:
    jq = np.asarray(quality['jpeg_quality'], float)
    is_jpeg = np.asarray(quality.get('format_jpeg', np.ones_like(jq)), float) > 0.5
    if np.isfinite(jq[is_jpeg]).any():
      q = int(np.floor(np.nanmin(jq[is_jpeg])))
  side = None
  if footprint is not None and np.isfinite(footprint).any():
    low = int(np.floor(np.nanmin(footprint)))
    side = low if low < chip_size else None
  return {'jpeg_quality': int(np.clip(q, 1, 100)), 'side': side}


def outcome(results: dict[str, dict[str, Any]], kinds, chance: float, min_gain: float,
            min_retained: float) -> dict[str, Any]:
  """What the re-test says, from each harmonisation's scores (``results[name]`` with
  'beats_chance', 'retained', 'cv_score'; ``kinds`` and 'all'). A harmonisation ``kept`` the
  signal when it still beats chance and retains at least ``min_retained`` of the original
  distance from chance; ``removed_by``: those of ``kinds`` that did not; ``survives``: 'all'
  kept it and is at least ``min_gain`` over chance. Marks ``kept`` in ``results``."""
  for name in list(kinds) + ['all']:
    r = results[name]
    r['kept'] = bool(r['beats_chance'] and not r['retained'] < min_retained)
  return {'removed_by': [k for k in kinds if not results[k]['kept']],
          'min_retained': float(min_retained),
          'survives': bool(results['all']['kept']
                           and results['all']['cv_score'] - chance >= min_gain)}


def retest(metric: str, featurize: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
           reference: np.ndarray, y: np.ndarray, folds: np.ndarray, perms: np.ndarray,
           num_classes: int, ridge: float, bootstrap: int, seed: int, chunk: int,
           alpha: float, chance: float, targets: dict[str, Any], kinds=KINDS,
           progress=None, min_gain: float = 0.02,
           min_retained: float = DEFAULT_MIN_RETAINED) -> dict[str, Any]:
  """Scores the CNN's features on original and harmonised chips with the ridge head.

  featurize: uint8 chips [N, S, S, 3] -> float [N, D] (the CNN's view-0 features); reference:
  those features of the original chips [N, D]. Each harmonisation of ``kinds`` alone and all
  together: CV score, bootstrap CI, permutation p (the same ``perms`` and bootstrap seed as
  the reference), ``beats_chance`` (p < alpha and CI above chance) and ``retained`` (the
  share of the reference's distance from chance left). ``removed_by`` lists the ones that
  alone bring it to chance or keep less than ``min_retained`` of it (``kept`` says per
  harmonisation); ``survives``: with everything harmonised the signal still beats chance, is
  at least ``min_gain`` over chance and keeps at least ``min_retained`` of the original effect
  (a residue below that is more likely what the harmonisation could not undo than a face:
  docs/BASELINES.md).
  ``progress``: a gradejax.progress.Task updated once per harmonisation.
  """
  def score(x):
    s, oof = crossval.ridge_observed(metric, x, y, folds, num_classes, ridge)
    null = crossval.ridge_permutation_scores(metric, x, y, folds, num_classes, ridge, perms,
                                             chunk)
    boot = crossval.fast_bootstrap(metric, y, oof, num_classes, bootstrap, seed)
    ci = crossval.bootstrap_ci(boot)
    p = crossval.p_value(s, null)
    return {'cv_score': s, 'ci95': ci, 'p_value': p,
            'beats_chance': bool(p < alpha and ci[0] > chance)}

  ref = score(np.asarray(reference, np.float32))
  out: dict[str, Any] = {'reference': ref, 'head': 'ridge', 'settings': dict(targets),
                         'kinds': list(kinds)}
  mask = face_mask(images.shape[1])
  sigma = targets.get('lowpass_sigma')
  sigma = common_sigma(images) if sigma is None else float(sigma)
  out['settings']['lowpass_sigma'] = sigma
  base = ref['cv_score'] - chance
  all_images = None
  # 'resolution' alone and 'all' share their first step: computed once.
  resolved = (resolution(np.asarray(images, np.float32) / 255.0, targets.get('side'), sigma,
                         mask) if 'resolution' in kinds else None)
  for name in list(kinds) + ['all']:
    which = tuple(kinds) if name == 'all' else (name,)
    chips = harmonise(images, which, side=targets.get('side'),
                      quality=targets['jpeg_quality'], mask=mask, sigma=sigma,
                      colour_method=targets.get('colour_method', 'quantile'),
                      resolved=resolved if 'resolution' in which else None)
    r = score(np.asarray(featurize(chips), np.float32))
    r['retained'] = float((r['cv_score'] - chance) / base) if base > 0 else float('nan')
    r['description'] = DESCRIPTIONS[name]
    out[name] = r
    if name == 'all':
      all_images = chips
    if progress is not None:
      progress.update(1)
  out.update(outcome(out, kinds, chance, min_gain, min_retained))
  out['images_all'] = all_images  # not JSON: the coarse-appearance baseline uses them
  return out
