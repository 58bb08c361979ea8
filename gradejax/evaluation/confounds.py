"""Photo-condition baselines: feature sets that carry no identity, and the three-way answer.

Each baseline is a feature set scored by :func:`crossval.ridge_oof` with the CNN's folds and
label permutations (docs/BASELINES.md says what each rules out):

* ``image_statistics``: colour/brightness histograms, means and sds of the chip;
* ``image_quality``: compression, resolution, sharpness, noise, framing, from the original
  photo file (``OUT/photo_conditions.csv``, written by prepare);
* ``blurred_photo``: the chip strongly blurred and pooled to a coarse grid (colour and layout
  only; Leuner 2019's control);
* ``background``: colour statistics of the photo outside the chip (face masked);
* ``head_pose``: yaw, pitch and roll from dlib's 68 landmarks;
* ``face_geometry``: dlib's 68 landmarks in chip coordinates (after the similarity alignment).

Two kinds (docs/BASELINES.md says why): :data:`ACQUISITION` baselines measure how the photo
was taken and stored (colour/brightness, quality and compression, background, head pose) and
can answer *photos predict grades through photo conditions*; :data:`FACIAL` ones measure the
face itself (coarse appearance, landmark geometry) and are part of *faces predict grades*:
they say which aspect of the face carries the signal (:func:`aspect`).

The answer (:func:`decide`, :data:`ANSWERS`): *faces predict grades* when the CNN beats chance,
still does on photos whose acquisition conditions are equalised (the harmonised re-test,
:mod:`harmonise`) and adds to the acquisition baselines that beat chance by at least
``min_gain`` with a bootstrap CI of the gain above 0 (incremental validity: the stacked
out-of-fold scores of those baselines plus the CNN's, against the baselines' alone, the CNN's
column permuted for the p-value) -- unless the re-test survived and every such baseline is
one the re-test equalised (the intervention outranks the regression); *photos predict grades
through photo conditions* when a harmonisation removes the signal, when an acquisition
baseline beats chance (Holm-adjusted over the battery) and the CNN adds too little to it, or
when the CNN is at chance and an acquisition baseline is not; otherwise *not
distinguishable from chance*.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradejax import imageops
from gradejax.data import photo_quality
from gradejax.evaluation import crossval, ledger

FACES, CONDITIONS, CHANCE = ('faces predict grades',
                             'photos predict grades through photo conditions',
                             'not distinguishable from chance')
ANSWERS = (FACES, CONDITIONS, CHANCE)

DESCRIPTIONS = {
    'image_statistics': 'colour/brightness statistics',
    'image_quality': 'image quality and compression (JPEG quality, bytes/pixel, resolution, '
                     'sharpness, noise, framing)',
    'blurred_photo': 'blurred photo (colour and layout only)',
    'background': 'background only (face masked)',
    'head_pose': 'head pose (yaw, pitch, roll)',
    'face_geometry': 'facial geometry (68 landmarks)',
}
# How the photo was taken and stored vs what the face is (docs/BASELINES.md).
ACQUISITION = ('image_statistics', 'image_quality', 'background', 'head_pose')
FACIAL = ('blurred_photo', 'face_geometry')
ASPECTS = {'blurred_photo': 'coarse appearance', 'face_geometry': 'geometry'}
DETAIL = 'detail beyond coarse appearance and geometry'
# Which harmonisation (gradejax.evaluation.harmonise) equalises what a baseline measures;
# head pose has none (no re-rendering turns a head), so only the regression can speak to it.
HARMONISED_BY = {'image_statistics': ('colour',), 'image_quality': ('jpeg', 'resolution'),
                 'background': ('background',)}
DEFAULT_MIN_GAIN = 0.02
_blur = jax.jit(imageops.gaussian_blur, static_argnames=('sigma', 'edge'))


def image_statistics(images: np.ndarray, bins: int = photo_quality.BINS) -> np.ndarray:
  """Photo statistics only, no face: per-channel (R, G, B, brightness) histograms plus means and
  standard deviations -> float32 [N, 4 * bins + 8]. Images uint8 or float in [0, 1]."""
  x = np.asarray(images, np.float32)
  if x.max() > 1.0:
    x = x / 255.0
  return np.stack([photo_quality.colour_statistics(i.reshape(-1, 3), bins) for i in x])


def blurred_photo(images: np.ndarray, sigma: float = 12.0, grid: int = 6) -> np.ndarray:
  """float32 [N, grid * grid * 3]: chips (uint8 or [0, 1] [N, H, W, 3]) area-averaged to about
  30 px, blurred with a Gaussian of ``sigma`` chip pixels, and pooled to ``grid x grid``."""
  x = np.asarray(images, np.float32)
  if x.max() > 1.0:
    x = x / 255.0
  n, h, w, _ = x.shape
  f = max(1, min(h, w) // 30)
  x = x[:, :h // f * f, :w // f * f].reshape(n, h // f, f, w // f, f, 3).mean((2, 4))
  x = np.asarray(_blur(jnp.asarray(x), sigma=sigma / f, edge='edge'))
  h, w = x.shape[1] // grid * grid, x.shape[2] // grid * grid
  x = x[:, :h, :w].reshape(n, grid, h // grid, grid, w // grid, 3).mean((2, 4))
  return x.reshape(n, -1)


def _impute(x: np.ndarray) -> np.ndarray:
  """NaN -> the column's mean over rows that have it (0 if none); label-free."""
  x = np.asarray(x, np.float64)
  mean = np.nanmean(np.where(np.isnan(x), np.nan, x), axis=0) if np.isfinite(x).any() else 0
  mean = np.nan_to_num(mean)
  return np.where(np.isnan(x), mean, x).astype(np.float32)


def condition_features(rows: dict[int, dict[str, Any]], source_row: np.ndarray
                       ) -> dict[str, np.ndarray]:
  """Feature sets from ``photo_quality.read_csv`` rows in the order of ``source_row`` [N].

  Rows missing from the table, and centre crops without landmarks, are imputed with column
  means (plus a 0/1 missing column for the geometry and the pose). Raises KeyError naming a missing row.
  """
  missing = [int(r) for r in source_row if int(r) not in rows]
  if missing:
    raise KeyError(f'photo_conditions.csv has no line for workbook rows {missing[:5]}; '
                   're-run prepare to rebuild it.')
  rs = [rows[int(r)] for r in source_row]
  nan = float('nan')
  quality = np.array([[nan if r[k] is None else r[k] for k in photo_quality.QUALITY_COLUMNS]
                      for r in rs])
  bg = np.stack([r['background'] if r['background'] is not None
                 else np.full(photo_quality.BACKGROUND_DIM, nan) for r in rs])
  has = [r['landmarks68'] is not None for r in rs]
  lm = np.stack([np.r_[r['landmarks68'], 0.0] if h else np.r_[np.full(136, nan), 1.0]
                 for r, h in zip(rs, has)])
  pose = np.stack([np.r_[[nan if r[k] is None else r[k] for k in photo_quality.POSE_COLUMNS],
                         0.0] if h
                   else np.r_[np.full(3, nan), 1.0] for r, h in zip(rs, has)])
  return {'image_quality': _impute(quality), 'background': _impute(bg),
          'head_pose': _impute(pose), 'face_geometry': _impute(lm)}


def battery(metric: str, sets: dict[str, np.ndarray], y: np.ndarray, folds: np.ndarray,
            perms: np.ndarray, num_classes: int, ridge: float, bootstrap: int, seed: int,
            chunk: int, progress=None) -> dict[str, dict[str, Any]]:
  """Scores every feature set with the ridge head: CV score, bootstrap CI, permutation p.

  Feature sets are zero-padded to one width, so one compiled program serves them all (a zero
  column standardises to zero and gets a zero coefficient: the scores are those of the
  unpadded set). ``progress``: a gradejax.progress.Task updated per set. Returns name -> {'cv_score', 'ci95', 'p_value', 'null_q95', 'features',
  'oof' (float [R, N, C], not for JSON)}.
  """
  if not sets:
    return {}
  width = -(-max(x.shape[1] for x in sets.values()) // 16) * 16
  out = {}
  for name, x in sets.items():
    xp = np.zeros((len(x), width), np.float32)
    xp[:, :x.shape[1]] = x
    score, oof = crossval.ridge_observed(metric, xp, y, folds, num_classes, ridge)
    null = crossval.ridge_permutation_scores(metric, xp, y, folds, num_classes, ridge, perms,
                                             chunk)
    boot = crossval.fast_bootstrap(metric, y, oof, num_classes, bootstrap, seed)
    out[name] = {'cv_score': score,
                 'ci95': crossval.bootstrap_ci(boot),
                 'p_value': crossval.p_value(score, null),
                 'null_q95': float(np.percentile(null, 95)), 'features': int(x.shape[1]),
                 'oof': oof}
    if progress is not None:
      progress.update(1)
  adjusted = ledger.holm([b['p_value'] for b in out.values()])
  for b, p in zip(out.values(), adjusted):
    b['p_holm'] = p
  return out


def beats_chance(b: dict[str, Any], chance: float, alpha: float) -> bool:
  """A baseline beats chance: Holm-adjusted permutation p below alpha and CI above chance."""
  return bool(b['p_holm'] < alpha and b['ci95'][0] > chance)


def _logit(oof: np.ndarray) -> np.ndarray:
  """[R, N, C] probabilities -> [R, N, C-1] log-odds against class 0 (a scale ridge likes)."""
  p = np.clip(oof, 1e-6, 1.0)
  return (np.log(p[..., 1:]) - np.log(p[..., :1])).astype(np.float32)


def incremental(metric: str, baselines: dict[str, dict[str, Any]], names: list[str],
                cnn_oof: np.ndarray, y: np.ndarray, folds: np.ndarray, perms: np.ndarray,
                num_classes: int, ridge: float, chunk: int, bootstrap: int = 0, seed: int = 0
                ) -> dict[str, Any]:
  """Does the CNN add to the baselines ``names``? Stacks their out-of-fold scores (repeat by
  repeat) with the CNN's out-of-fold log-odds; the null permutes the CNN's column. The gain's
  95% CI: the stacked heads' out-of-fold scores with and without the CNN, scored on the same
  ``bootstrap`` resamples (``seed``), the difference per resample."""
  base = np.concatenate([baselines[n]['oof'][..., 1:] for n in names], -1).astype(np.float32)
  extra = _logit(cnn_oof)
  alone, both, null = crossval.incremental_scores(metric, base, extra, y, folds,
                                                  num_classes, ridge, perms, chunk)
  out = {'against': list(names), 'baselines_score': alone, 'with_cnn_score': both,
         'gain': both - alone, 'p_value': crossval.p_value(both, null),
         'null_mean': float(np.mean(null)) if len(null) else float('nan'),
         'gain_ci95': [float('nan')] * 2}
  if bootstrap:
    k = int(folds.max()) + 1
    t = jax.nn.one_hot(jnp.asarray(y), num_classes)
    oofs = [np.asarray(crossval.ridge_oof(jnp.asarray(np.concatenate([base, e], -1)), t,
                                          jnp.asarray(folds), ridge, k))
            for e in (np.zeros_like(extra), extra)]
    diff = (crossval.fast_bootstrap(metric, y, oofs[1], num_classes, bootstrap, seed)
            - crossval.fast_bootstrap(metric, y, oofs[0], num_classes, bootstrap, seed))
    out['gain_ci95'] = crossval.bootstrap_ci(diff)
  return out


def adds(incr: dict[str, Any] | None, alpha: float, min_gain: float) -> bool:
  """The CNN adds to the baselines: incremental p < alpha, gain >= min_gain AND the gain's
  bootstrap CI above 0 (a tiny gain over a near-saturated baseline is 'significant' with
  enough permutations; the floor and the CI keep it from counting)."""
  if incr is None:
    return False
  lo = incr.get('gain_ci95', [float('nan')])[0]
  return bool(incr['p_value'] < alpha and incr['gain'] >= min_gain and lo > 0)


def group_association(y: np.ndarray, groups: np.ndarray, num_permutations: int, seed: int
                      ) -> dict[str, Any]:
  """Does the group alone predict the label? Chi-square statistic of the group x class table,
  permutation p over label shuffles (exact for small groups, unlike the chi-square law)."""
  names, gid = np.unique(groups, return_inverse=True)
  c = int(y.max()) + 1

  def chi2(labels):
    t = np.zeros((len(names), c))
    np.add.at(t, (gid, labels), 1)
    e = t.sum(1, keepdims=True) * t.sum(0, keepdims=True) / t.sum()
    return float(np.sum(np.where(e > 0, (t - e) ** 2 / np.where(e > 0, e, 1), 0)))

  obs = chi2(y)
  rng = np.random.default_rng(seed)
  null = np.array([chi2(rng.permutation(y)) for _ in range(num_permutations)])
  rates = {str(n): float(np.mean(y[gid == g] == c - 1)) for g, n in enumerate(names)}
  return {'num_groups': int(len(names)), 'chi2': obs, 'p_value': crossval.p_value(obs, null),
          'share_of_top_class_by_group': rates}


def decide(cnn_significant: bool, baselines: dict[str, dict[str, Any]],
           incr: dict[str, Any] | None, chance: float, alpha: float,
           min_gain: float = DEFAULT_MIN_GAIN, harmonised: dict[str, Any] | None = None
           ) -> tuple[str, list[str]]:
  """(answer, names of the acquisition baselines that beat chance). Facial baselines never
  make the answer 'photo conditions' (see :func:`aspect` for them); ``incr`` is the CNN
  against the acquisition baselines, ``harmonised`` the :func:`harmonise.retest` result (its
  verdict counts only when the CNN's features on the original chips beat chance there)."""
  explained = [n for n, b in baselines.items()
               if n in ACQUISITION and beats_chance(b, chance, alpha)]
  if not cnn_significant:
    return (CONDITIONS if explained else CHANCE), explained
  usable = harmonised is not None and harmonised['reference']['beats_chance']
  if usable and (harmonised['removed_by'] or not harmonised['survives']):
    return CONDITIONS, explained
  if explained and not adds(incr, alpha, min_gain):
    unequalised = [n for n in explained if not (usable and n in HARMONISED_BY)]
    return (CONDITIONS if unequalised else FACES), explained
  return FACES, explained


def aspect(metric: str, baselines: dict[str, dict[str, Any]], cnn_oof: np.ndarray,
           y: np.ndarray, folds: np.ndarray, perms: np.ndarray, num_classes: int,
           ridge: float, chunk: int, chance: float, alpha: float, min_gain: float,
           bootstrap: int = 0, seed: int = 0) -> dict[str, Any]:
  """Which facial aspect carries the signal, by incremental validity among them.

  The facial baselines that beat chance (``beats``); the CNN against them (``cnn_beyond``):
  if it adds (:func:`adds`), or none beats chance, the aspect is :data:`DETAIL`; otherwise
  each that beats chance and adds to the other (its out-of-fold log-odds stacked on the
  other's scores, as the CNN is in :func:`incremental`), or both when neither adds to the
  other (they overlap). Returns {'aspect', 'beats', 'cnn_beyond', 'between'}.
  """
  beats = [n for n in FACIAL if n in baselines and beats_chance(baselines[n], chance, alpha)]
  out: dict[str, Any] = {'beats': beats, 'cnn_beyond': None, 'between': {}}
  if not beats:
    out['aspect'] = DETAIL
    return out
  out['cnn_beyond'] = incremental(metric, baselines, beats, cnn_oof, y, folds, perms,
                                  num_classes, ridge, chunk, bootstrap, seed)
  if adds(out['cnn_beyond'], alpha, min_gain):
    out['aspect'] = DETAIL
    return out
  carriers = list(beats)
  if len(beats) == 2:
    for n in beats:
      other = [m for m in beats if m != n]
      out['between'][n] = incremental(metric, baselines, other, baselines[n]['oof'], y,
                                      folds, perms, num_classes, ridge, chunk, bootstrap, seed)
    adding = [n for n in beats if adds(out['between'][n], alpha, min_gain)]
    carriers = adding if len(adding) == 1 else beats
  out['aspect'] = ' and '.join(ASPECTS[n] for n in carriers)
  return out
