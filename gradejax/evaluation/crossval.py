"""Cross-validated heads on fixed features, vectorised over folds, repeats and permutations.

One compiled program trains every (permutation, repeat, fold) head side by side: full-batch
Adam on standardised features (``widths=()`` is L2-regularised logistic regression, else a
small MLP), out-of-fold probabilities pooled per repeat, the CV score averaged over repeats.
Baselines for the verdict live here too: the majority class, and a closed-form ridge head
(:func:`ridge_oof`) that scores every label permutation of a feature set with one linear
solve per fold, so the whole photo-condition battery costs seconds, not minutes. Groups (cohort,
photo session): :func:`group_folds` keeps a group in one fold, :func:`permutations` shuffles
labels only within groups.

Permutations keep the folds' class counts: labels are shuffled only within the cells of
:func:`strata` (the rows that share a fold in every repeat, and a group). The folds are
stratified by the true labels and held fixed, so a free shuffle would give the permuted
labellings fold compositions the observed one never has, and the observed labelling would not
be exchangeable with them. A shuffle ``p`` that maps every fold onto itself is the same as
shuffling the photos instead (``T(y[p], x, F) == T(y, x[argsort(p)], F)``), so every null
score is the observed score of an equally likely world and the p-value is exact.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradejax.data import labels
from gradejax.nets import classifier
from gradejax import batching, stats
from gradejax.training import input_pipeline

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class CVHead:
  """Head trained in every CV fold (hashable: static under jit)."""
  num_classes: int = 2
  widths: tuple[int, ...] = ()
  steps: int = 200
  learning_rate: float = 0.05
  weight_decay: float = 1e-2
  balanced: bool = True  # class-weighted loss (full batch: the same as balanced oversampling)
  metric: str = 'roc_auc'


def from_config(config, num_classes: int) -> CVHead:
  c = config.cv_head
  return CVHead(num_classes=num_classes, widths=tuple(c.widths), steps=int(c.steps),
                learning_rate=float(c.learning_rate), weight_decay=float(c.weight_decay),
                balanced=config.imbalance != 'none', metric=config.metric)


def cv_folds(label: np.ndarray, dataset_fold: np.ndarray, k: int, repeats: int, seed: int
             ) -> np.ndarray:
  """int32 [repeats, N] fold ids: repeat 0 is the dataset's fold column when it has ``k``
  folds, later repeats are fresh stratified folds (seeded by ``seed + r``)."""
  out = []
  for r in range(repeats):
    if r == 0 and len(np.unique(dataset_fold)) == k and dataset_fold.min() == 0:
      out.append(np.asarray(dataset_fold, np.int32))
    else:
      out.append(labels.stratified_folds(label, k, seed + r))
  return np.stack(out)


def fit_predict(h: CVHead, x: Array, y: Array, train: Array, key: Array) -> Array:
  """Trains on rows where ``train`` (bool [N]) and returns probs [N, C] for every row.

  x: float [N, D] features; y: int [N] labels.
  """
  w = (input_pipeline.class_weights(y, train, h.num_classes) if h.balanced
       else train.astype(jnp.float32))
  s = classifier.norm_stats(x, train)
  z = (x - s['mean']) / s['std']
  net = classifier.Head(h.num_classes, h.widths, 0.0)
  params = net.init(key, z[:1])['params']
  norm = {'mean': jnp.zeros(x.shape[1]), 'std': jnp.ones(x.shape[1])}
  apply = lambda p: net.apply({'params': p, 'norm': norm}, z)
  tx = optax.adam(h.learning_rate)

  def loss_fn(p):
    ce = optax.softmax_cross_entropy_with_integer_labels(apply(p), y)
    l2 = sum(jnp.sum(v ** 2) for k, v in _kernels(p))
    return jnp.sum(ce * w) / jnp.sum(w) + 0.5 * h.weight_decay * l2

  def body(carry, _):
    p, s = carry
    g = jax.grad(loss_fn)(p)
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), None

  (params, _), _ = jax.lax.scan(body, (params, tx.init(params)), None, length=h.steps)
  return jax.nn.softmax(apply(params))


def _kernels(p):
  from flax import traverse_util
  return [(k, v) for k, v in traverse_util.flatten_dict(p, sep='/').items()
          if k.endswith('kernel')]


def _out_of_fold(h: CVHead, x: Array, y: Array, folds: Array, key: Array, k: int) -> Array:
  """probs [R, N, C]: each row predicted by the head of the (of ``k``) fold that held it out;
  folds: int [R, N] fold ids per repeat."""
  def one_fold(fold_ids, f, fkey):
    probs = fit_predict(h, x, y, fold_ids != f, fkey)
    return probs * (fold_ids == f)[:, None]

  def one_repeat(fold_ids, rkey):
    fkeys = jax.random.split(rkey, k)
    return jnp.sum(jax.vmap(one_fold, in_axes=(None, 0, 0))(fold_ids, jnp.arange(k), fkeys),
                   axis=0)

  rkeys = jax.random.split(key, folds.shape[0])
  return jax.vmap(one_repeat)(folds, rkeys)


def cv_score(h: CVHead, y: Array, oof: Array) -> Array:
  """Mean over repeats of ``h.metric`` on pooled out-of-fold probs ``oof [R, N, C]``."""
  return jnp.mean(jax.vmap(lambda p: stats.score(h.metric, y, p, h.num_classes))(oof))


@functools.partial(jax.jit, static_argnames=('h', 'k'))
def _scores_of_labels(h: CVHead, x, ys, folds, key, k):
  """CV scores [P] for label vectors ``ys [P, N]``, all heads side by side."""
  def one(y):
    return cv_score(h, y, _out_of_fold(h, x, y, folds, key, k))
  return jax.vmap(one)(ys)


def observed(h: CVHead, x: np.ndarray, y: np.ndarray, folds: np.ndarray, key: Array
             ) -> tuple[float, np.ndarray]:
  """(CV score, out-of-fold probs [R, N, C]) with the true labels."""
  k = int(folds.max()) + 1
  oof = jax.jit(_out_of_fold, static_argnames=('h', 'k'))(h, jnp.asarray(x), jnp.asarray(y),
                                                          jnp.asarray(folds), key, k=k)
  return float(cv_score(h, jnp.asarray(y), oof)), np.asarray(oof)


def permutations(n: int, num: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
  """int [num, n] row permutations from ``np.random.default_rng(seed)``; with ``groups`` [n]
  each one only shuffles rows within a group (exchangeable within a session, not across; pass
  :func:`strata`, as :func:`label_permutations` does, to also keep the folds' class counts)."""
  rng = np.random.default_rng(seed)
  if groups is None:
    return np.stack([rng.permutation(n) for _ in range(num)]) if num else np.zeros((0, n), int)
  members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
  out = np.tile(np.arange(n), (num, 1))
  for i in range(num):
    for idx in members:
      out[i, idx] = idx[rng.permutation(len(idx))]
  return out


def strata(folds: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
  """int [N] cell ids: rows in one cell share their fold in every repeat (``folds`` int [R, N])
  and their group (``groups`` [N], optional). Shuffling labels within cells keeps every fold's
  class counts, which makes the permutation test exact with fixed label-stratified folds (the
  module docstring says why). There are up to ``k ** R`` cells: with many repeats on few rows
  the cells get small and the test loses power (:func:`evaluate` warns)."""
  keys = [np.asarray(f) for f in np.atleast_2d(folds)]
  if groups is not None:
    keys.append(np.unique(np.asarray(groups).astype(str), return_inverse=True)[1])
  return np.unique(np.stack(keys), axis=1, return_inverse=True)[1].reshape(-1).astype(np.int32)


def label_permutations(folds: np.ndarray, num: int, seed: int, groups: np.ndarray | None = None
                       ) -> np.ndarray:
  """int [num, N]: the permutations every test here uses (the CNN's and the battery's):
  :func:`permutations` from ``seed`` within the cells of :func:`strata` (``folds`` [R, N])."""
  return permutations(np.shape(folds)[-1], num, seed, strata(folds, groups))


def group_folds(y: np.ndarray, groups: np.ndarray, k: int, repeats: int, seed: int
                ) -> np.ndarray:
  """int32 [repeats, N] fold ids keeping every group in one fold (GroupKFold), class counts
  balanced greedily: groups, largest first (ties in a seeded random order), each go to the fold
  whose class counts stay closest to an even share. ``k`` is capped at the number of groups.

  Raises ValueError with fewer than two groups (no fold could hold a group out).
  """
  names, gid = np.unique(groups, return_inverse=True)
  if len(names) < 2:
    raise ValueError(f'group-respecting CV needs at least 2 groups; the group column holds '
                     f'{len(names)} ({names.tolist()[:3]}). Drop --group_column or fix it.')
  k = min(k, len(names))
  c = int(y.max()) + 1
  counts = np.stack([np.bincount(y[gid == g], minlength=c) for g in range(len(names))])
  target = counts.sum(0) / k
  out = []
  for r in range(repeats):
    rng = np.random.default_rng([seed, r, 7])
    order = sorted(rng.permutation(len(names)), key=lambda g: -counts[g].sum())
    fold_counts = np.zeros((k, c))
    assign = np.zeros(len(names), np.int32)
    for g in order:
      # The fold whose deviation from the even share grows least (or shrinks most): comparing
      # the deviations after the move alone piled groups into the first folds (empty ones
      # always look far off), leaving later folds empty.
      before = (((fold_counts - target) / np.maximum(target, 1)) ** 2).sum(1)
      cost = (((fold_counts + counts[g] - target) / np.maximum(target, 1)) ** 2).sum(1)
      assign[g] = int(np.argmin(cost - before))
      fold_counts[assign[g]] += counts[g]
    out.append(assign[gid])
  return np.stack(out).astype(np.int32)


def permutation_scores(h: CVHead, x: np.ndarray, y: np.ndarray, folds: np.ndarray, key: Array,
                       num_permutations: int, chunk: int, seed: int,
                       groups: np.ndarray | None = None, perms: np.ndarray | None = None,
                       progress=None) -> np.ndarray:
  """CV scores [num_permutations] with labels shuffled (same folds, same head init keys).

  Permutations come from :func:`label_permutations` (``seed``, within the cells of ``folds``
  and ``groups``: every fold keeps its class counts) unless given as ``perms`` [P, N];
  ``chunk`` of them per compiled call (the last chunk padded) bounds memory. ``progress``: a
  gradejax.progress.Task updated after every chunk.
  """
  if perms is None:
    perms = label_permutations(folds, num_permutations, seed, groups)
  k = int(folds.max()) + 1
  x, folds_j = jnp.asarray(x), jnp.asarray(folds)
  y = np.asarray(y)

  def run(p):
    out = _scores_of_labels(h, x, jnp.asarray(y[p]), folds_j, key, k)
    if progress is not None:
      progress.update(len(p))
    return out

  return batching.map_batches(run, perms, chunk)


def p_value(observed_score: float, null: np.ndarray) -> float:
  """(1 + #{null >= observed}) / (1 + #null): never 0, valid for a finite permutation test."""
  return float((1 + np.sum(null >= observed_score)) / (1 + len(null)))


def bootstrap(h: CVHead, y: np.ndarray, oof: np.ndarray, n: int, seed: int, chunk: int = 100
              ) -> np.ndarray:
  """CV scores [n] on examples resampled with replacement (the same draw for every repeat)."""
  idx = stats.bootstrap_indices(len(y), n, seed)
  y_j, oof_j = jnp.asarray(y), jnp.asarray(oof)
  fn = jax.jit(jax.vmap(lambda i: cv_score(h, y_j[i], oof_j[:, i])))
  return np.concatenate([np.asarray(fn(jnp.asarray(idx[s:s + chunk])))
                         for s in range(0, n, chunk)])


def bootstrap_ci(draws: np.ndarray, level: float = 0.95) -> list[float]:
  """[lo, hi] percentile interval of bootstrap ``draws``, ignoring the NaN ones.

  A resample that holds no example of a small class has no ROC-AUC (NaN); with a plain
  percentile one such draw in a thousand would make the whole interval NaN and every
  ``lo > chance`` test false. Those draws are left out (they are rare unless a class has only a
  handful of rows); all-NaN draws give [nan, nan].
  """
  draws = np.asarray(draws, float)
  ok = draws[np.isfinite(draws)]
  if not len(ok):
    return [float('nan'), float('nan')]
  tail = 100 * (1 - level) / 2
  return [float(v) for v in np.percentile(ok, [tail, 100 - tail])]


def majority_predictions(y: np.ndarray, folds: np.ndarray, num_classes: int) -> np.ndarray:
  """[R, N] int: each example's prediction by its training folds' most frequent class."""
  preds = np.zeros(folds.shape, np.int32)
  for r, fold_ids in enumerate(folds):
    for f in np.unique(fold_ids):
      counts = np.bincount(y[fold_ids != f], minlength=num_classes)
      preds[r, fold_ids == f] = np.argmax(counts)
  return preds


def majority_class(h: CVHead, y: np.ndarray, folds: np.ndarray) -> dict[str, float]:
  """Predicting each training fold's majority class: the CV score (chance for every metric
  here, whichever class is chosen) and the plain accuracy (the class share; the number that
  makes plain accuracy a misleading metric on 400 passes and 30 fails)."""
  preds = majority_predictions(y, folds, h.num_classes)
  eye = np.eye(h.num_classes, dtype=np.float32)
  scores = [float(stats.score(h.metric, jnp.asarray(y), jnp.asarray(eye[p]), h.num_classes))
            for p in preds]
  return {'cv_score': float(np.mean(scores)), 'accuracy': float(np.mean(preds == y[None]))}


def ridge_grade(x: np.ndarray, grade: np.ndarray, folds: np.ndarray, lam: float = 100.0
                ) -> dict[str, float]:
  """Ridge regression of the grade on standardised features, CV over repeat 0's folds.

  Returns MAE (grade points), the MAE of predicting the training mean, and Spearman's rho.
  """
  pred, base = np.zeros(len(grade)), np.zeros(len(grade))
  for f in np.unique(folds[0]):
    tr, te = folds[0] != f, folds[0] == f
    mu, sd = (np.asarray(v) for v in stats.mean_std(x, tr))
    sd = sd + 1e-6
    a, b = (x[tr] - mu) / sd, (x[te] - mu) / sd
    gm = grade[tr].mean()
    coef = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (grade[tr] - gm))
    pred[te], base[te] = b @ coef + gm, gm
  g = jnp.asarray(grade, jnp.float32)
  return {'mae': float(stats.mae(g, jnp.asarray(pred))),
          'mae_predicting_mean': float(stats.mae(g, jnp.asarray(base))),
          'spearman': float(stats.spearman(g, jnp.asarray(pred)))}


# ---------------------------------------------------------------------------------------------
# The ridge head of the photo-condition baselines


def rank_auc(positive: Array, score: Array) -> Array:
  """ROC-AUC from average ranks (O(N log N)); equals :func:`stats.binary_roc_auc` (ties 1/2)
  and is exact in float32 for N < 4000 (rank sums are integers or halves below 2^24)."""
  return stats.binary_roc_auc(positive, score)


def fast_score(metric: str, y: Array, scores: Array, num_classes: int) -> Array:
  """:func:`stats.score` with rank-based ROC-AUC (binary: column 1; else macro one-vs-rest)."""
  if metric != 'roc_auc':
    return stats.score(metric, y, scores, num_classes)
  if num_classes == 2:
    return rank_auc(y == 1, scores[:, 1])
  per = jax.vmap(lambda c, s: rank_auc(y == c, s), in_axes=(0, 1))(jnp.arange(num_classes),
                                                                   scores)
  return jnp.nanmean(per)


@functools.partial(jax.jit, static_argnames=('k',))
def ridge_oof(x: Array, targets: Array, folds: Array, ridge: float, k: int) -> Array:
  """Out-of-fold ridge predictions: float [R, N, M].

  x: float [N, D] (or [R, N, D], one matrix per repeat); targets: float [N, M] (one-hot labels,
  or many label vectors side by side: every column is fitted by the same solve); folds: int
  [R, N]. Features are standardised on the training rows, targets centred there (no
  intercept: predictions are deviations from the training mean, which removes the class-prior
  offset), and ``(Z'Z + ridge * n_train * I) beta = Z'T`` is solved once per fold.
  """
  xs = x if x.ndim == 3 else jnp.broadcast_to(x, (folds.shape[0],) + x.shape)

  def one_fold(xr, fold_ids, f):
    m = (fold_ids != f).astype(jnp.float32)
    n = jnp.sum(m)
    mean, std = stats.mean_std(xr, m)
    std = std + 1e-6
    z = (xr - mean) / std
    zt = z * m[:, None]
    t = targets - (m @ targets) / n
    g = z.T @ zt + ridge * n * jnp.eye(z.shape[1])
    beta = jnp.linalg.solve(g, zt.T @ t)
    return (z @ beta) * (fold_ids == f)[:, None]

  def one_repeat(xr, fold_ids):
    return jnp.sum(jax.vmap(one_fold, in_axes=(None, None, 0))(xr, fold_ids, jnp.arange(k)),
                   axis=0)

  return jax.vmap(one_repeat)(xs, folds)


def ridge_cv_score(metric: str, y: Array, oof: Array, num_classes: int) -> Array:
  """Mean over repeats of the metric on ridge out-of-fold scores ``oof [R, N, C]``."""
  return jnp.mean(jax.vmap(lambda o: fast_score(metric, y, o, num_classes))(oof))


@functools.partial(jax.jit, static_argnames=('metric', 'num_classes', 'k'))
def _ridge_label_scores(metric, num_classes, x, ys, folds, ridge, k):
  """CV scores [P] of label vectors ys [P, N]: one solve per fold for all P (targets side by
  side)."""
  p, n = ys.shape
  t = jax.nn.one_hot(ys, num_classes).transpose(1, 0, 2).reshape(n, p * num_classes)
  oof = ridge_oof(x, t, folds, ridge, k).reshape(folds.shape[0], n, p, num_classes)
  return jax.vmap(lambda yp, o: ridge_cv_score(metric, yp, o, num_classes),
                  in_axes=(0, 2))(ys, oof)


def ridge_observed(metric: str, x: np.ndarray, y: np.ndarray, folds: np.ndarray,
                   num_classes: int, ridge: float) -> tuple[float, np.ndarray]:
  """(CV score, out-of-fold scores [R, N, C]) of the ridge head on ``x`` with the true labels."""
  k = int(folds.max()) + 1
  oof = ridge_oof(jnp.asarray(x, jnp.float32), jax.nn.one_hot(jnp.asarray(y), num_classes),
                  jnp.asarray(folds), ridge, k)
  return float(ridge_cv_score(metric, jnp.asarray(y), oof, num_classes)), np.asarray(oof)


def ridge_permutation_scores(metric: str, x: np.ndarray, y: np.ndarray, folds: np.ndarray,
                             num_classes: int, ridge: float, perms: np.ndarray, chunk: int
                             ) -> np.ndarray:
  """CV scores [P] of the ridge head with labels ``y[perms[i]]`` (``perms`` [P, N], e.g. from
  :func:`permutations`, the same for every feature set); ``chunk`` per compiled call."""
  k = int(folds.max()) + 1
  x_j, f_j = jnp.asarray(x, jnp.float32), jnp.asarray(folds)
  if len(perms) == 0:
    return np.zeros(0)
  y = np.asarray(y)
  return batching.map_batches(
      lambda p: _ridge_label_scores(metric, num_classes, x_j, jnp.asarray(y[p]), f_j, ridge, k),
      perms, chunk)


@functools.partial(jax.jit, static_argnames=('metric', 'num_classes', 'k'))
def _ridge_column_scores(metric, num_classes, xs, y, folds, ridge, k):
  """CV scores [P] of the ridge head for feature stacks ``xs [P, R, N, D]`` (the
  incremental-validity null: some columns row-permuted)."""
  t = jax.nn.one_hot(y, num_classes)
  return jax.vmap(lambda x: ridge_cv_score(metric, y, ridge_oof(x, t, folds, ridge, k),
                                           num_classes))(xs)


def incremental_scores(metric: str, base: np.ndarray, extra: np.ndarray, y: np.ndarray,
                       folds: np.ndarray, num_classes: int, ridge: float, perms: np.ndarray,
                       chunk: int) -> tuple[float, float, np.ndarray]:
  """Does ``extra`` add to ``base``? Both float [R, N, *] (e.g. out-of-fold scores per repeat).

  Returns (CV score of base alone, CV score of [base, extra], null scores [P] of
  [base, extra[perm]]): the extra block's rows permuted (``perms`` [P, N]), which keeps the
  base's relation to the labels and breaks the extra block's. "Base alone" is [base, 0]: a
  zero block gets zero coefficients, so all three share one compiled program.
  """
  k = int(folds.max()) + 1
  f_j, y_j = jnp.asarray(folds), jnp.asarray(y)
  b_j, e_j = jnp.asarray(base, jnp.float32), jnp.asarray(extra, jnp.float32)
  stacks = [jnp.zeros_like(e_j)[None], e_j[None]] + [
      e_j[:, jnp.asarray(perms[s:s + chunk])].transpose(1, 0, 2, 3)
      for s in range(0, len(perms), chunk)]
  extras = jnp.concatenate(stacks)
  total = extras.shape[0]
  pad = (-total) % chunk
  extras = jnp.concatenate([extras, jnp.repeat(extras[-1:], pad, axis=0)])
  out = []
  for s in range(0, extras.shape[0], chunk):
    e = extras[s:s + chunk]
    xs = jnp.concatenate([jnp.broadcast_to(b_j, (len(e),) + b_j.shape), e], -1)
    out.append(np.asarray(_ridge_column_scores(metric, num_classes, xs, y_j, f_j, ridge, k)))
  scores = np.concatenate(out)[:total]
  return float(scores[0]), float(scores[1]), scores[2:]


@functools.partial(jax.jit, static_argnames=('metric', 'num_classes'))
def _resampled_scores(metric, num_classes, y, oof, idx):
  return jax.vmap(lambda i: ridge_cv_score(metric, y[i], oof[:, i], num_classes))(idx)


def fast_bootstrap(metric: str, y: np.ndarray, oof: np.ndarray, num_classes: int, n: int,
                   seed: int, chunk: int = 100) -> np.ndarray:
  """:func:`bootstrap` (same resamples for the same ``seed``) with :func:`fast_score`."""
  idx = stats.bootstrap_indices(len(y), n, seed)
  y_j, oof_j = jnp.asarray(y), jnp.asarray(oof)
  if n == 0:
    return np.zeros(0)
  return batching.map_batches(
      lambda i: _resampled_scores(metric, num_classes, y_j, oof_j, jnp.asarray(i)), idx, chunk)
