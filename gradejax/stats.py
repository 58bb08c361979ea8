"""Classification and regression metrics in jnp (jit- and vmap-able, no scikit-learn), and
the statistics shared by evaluation, attribution and the report: ROC curves and bands,
bootstrap resamples, feature standardisation.

Labels are int [N] class ids, predictions int [N], scores float [N] (binary: the score of class
1) or [N, C] (multi-class: one column per class, one-vs-rest). ROC-AUC is the Mann-Whitney
statistic from average ranks (O(N log N), exact with ties); Spearman's ranks are pairwise
(O(N^2)), branch-free and cheap at the few hundred examples of a school.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def confusion_matrix(labels: Array, preds: Array, num_classes: int) -> Array:
  """[C, C] float32 counts; row = true class, column = predicted class."""
  t = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  p = jax.nn.one_hot(preds, num_classes, dtype=jnp.float32)
  return t.T @ p


def per_class_recall(cm: Array) -> Array:
  """[C] recall of each class from a confusion matrix (nan for a class with no examples)."""
  return jnp.diag(cm) / jnp.sum(cm, axis=1)


def balanced_accuracy(labels: Array, preds: Array, num_classes: int) -> Array:
  """Mean recall over the classes present in ``labels`` (chance = 1 / #classes)."""
  r = per_class_recall(confusion_matrix(labels, preds, num_classes))
  return jnp.nanmean(r)


def mcc(labels: Array, preds: Array, num_classes: int) -> Array:
  """Matthews correlation (multi-class form of Gorodkin 2004; 0 when undefined)."""
  cm = confusion_matrix(labels, preds, num_classes)
  n = jnp.sum(cm)
  correct = jnp.trace(cm)
  t, p = jnp.sum(cm, axis=1), jnp.sum(cm, axis=0)
  num = correct * n - t @ p
  den = jnp.sqrt(n ** 2 - p @ p) * jnp.sqrt(n ** 2 - t @ t)
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


def ranks(x: Array) -> Array:
  """1-based ranks of float [N], ties get the average of their ranks (as scipy.stats.rankdata)."""
  less = jnp.sum(x[None, :] < x[:, None], axis=1)
  equal = jnp.sum(x[None, :] == x[:, None], axis=1)
  return less + (equal + 1) / 2.0


def binary_roc_auc(positive: Array, score: Array) -> Array:
  """ROC-AUC of bool [N] ``positive`` against float [N] ``score``: the Mann-Whitney U over
  ``n1 * n0`` (a tie counts 1/2), from average ranks. nan when one class is absent. Exact in
  float32 for N < 4000 (rank sums are integers or halves below 2^24)."""
  pos = jnp.asarray(positive).astype(jnp.float32)
  score = jnp.asarray(score)
  srt = jnp.sort(score)
  rank = (jnp.searchsorted(srt, score, 'left') + jnp.searchsorted(srt, score, 'right') + 1) / 2
  n1 = jnp.sum(pos)
  n0 = pos.shape[0] - n1
  return (jnp.sum(rank * pos) - n1 * (n1 + 1) / 2) / (n1 * n0)


def binary_average_precision(positive: Array, score: Array) -> Array:
  """Average precision (area under the step PR curve, as sklearn's): mean over positives of the
  precision at their score threshold (ties share one threshold)."""
  pos = positive.astype(jnp.float32)
  above = (score[None, :] >= score[:, None]).astype(jnp.float32)  # [i, j]: s_j >= s_i
  precision = (above @ pos) / jnp.sum(above, axis=1)
  return jnp.sum(pos * precision) / jnp.sum(pos)


def _one_vs_rest(fn, labels: Array, scores: Array) -> Array:
  if scores.ndim == 1:
    return fn(labels == 1, scores)
  per_class = jax.vmap(lambda c, s: fn(labels == c, s), in_axes=(0, 1))(
      jnp.arange(scores.shape[1]), scores)
  return jnp.nanmean(per_class) if scores.shape[1] > 2 else per_class[1]


def roc_auc(labels: Array, scores: Array) -> Array:
  """Binary ROC-AUC (scores [N] of class 1, or [N, 2]); macro one-vs-rest for [N, C>2]."""
  return _one_vs_rest(binary_roc_auc, labels, scores)


def average_precision(labels: Array, scores: Array) -> Array:
  """PR-AUC of class 1 (binary), or the macro one-vs-rest mean for [N, C>2]."""
  return _one_vs_rest(binary_average_precision, labels, scores)


def mae(target: Array, pred: Array) -> Array:
  """Mean absolute error, in the target's units (grade points)."""
  return jnp.mean(jnp.abs(target - pred))


def spearman(a: Array, b: Array) -> Array:
  """Spearman rank correlation (Pearson on tie-averaged ranks); nan if either is constant."""
  ra, rb = ranks(a), ranks(b)
  ra, rb = ra - jnp.mean(ra), rb - jnp.mean(rb)
  return jnp.sum(ra * rb) / jnp.sqrt(jnp.sum(ra ** 2) * jnp.sum(rb ** 2))


def classification_report(labels: Array, probs: Array, num_classes: int) -> dict[str, Array]:
  """All classification metrics from ``probs [N, C]`` (predicted class = argmax)."""
  preds = jnp.argmax(probs, axis=-1)
  cm = confusion_matrix(labels, preds, num_classes)
  return {
      'balanced_accuracy': jnp.nanmean(per_class_recall(cm)),
      'roc_auc': roc_auc(labels, probs),
      'average_precision': average_precision(labels, probs),
      'mcc': mcc(labels, preds, num_classes),
      'per_class_recall': per_class_recall(cm),
      'confusion_matrix': cm,
  }


def chance_level(metric: str, num_classes: int) -> float:
  """Score of a predictor that knows nothing (for CIs and verdicts)."""
  return {'balanced_accuracy': 1.0 / num_classes, 'roc_auc': 0.5, 'mcc': 0.0}[metric]


def score(metric: str, labels: Array, probs: Array, num_classes: int) -> Array:
  """One scalar metric by name ('roc_auc', 'balanced_accuracy' or 'mcc') from probs [N, C]."""
  if metric == 'roc_auc':
    return roc_auc(labels, probs)
  preds = jnp.argmax(probs, axis=-1)
  if metric == 'balanced_accuracy':
    return balanced_accuracy(labels, preds, num_classes)
  if metric == 'mcc':
    return mcc(labels, preds, num_classes)
  raise ValueError(f'unknown metric {metric!r}; use roc_auc, balanced_accuracy or mcc')


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Binary ROC (labels [N] in {0, 1}, scores [N] of class 1): (fpr, tpr) at every distinct
  threshold, from (0, 0) to (1, 1); tied scores move both rates at once (a diagonal step), so
  the trapezoid area equals :func:`binary_roc_auc`."""
  y = np.asarray(labels).astype(bool)
  s = np.asarray(scores, float)
  order = np.argsort(-s, kind='stable')
  s, y = s[order], y[order]
  last = np.r_[np.diff(s) != 0, True]  # the last row of each tie group
  tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
  return (np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)])


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
  """Rows drawn with replacement, int [resamples, n]: every bootstrap of the package draws its
  resamples here, so the same ``seed`` gives the same resamples everywhere."""
  return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def roc_band(labels: np.ndarray, scores: np.ndarray, n: int = 200, seed: int = 0,
             grid: int = 101, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Pointwise bootstrap band of the ROC: rows resampled with replacement (stratified by class,
  so each resample has both), TPR interpolated on an FPR grid. Returns (fpr grid [G], lower
  [G], upper [G])."""
  rng = np.random.default_rng(seed)
  y = np.asarray(labels).astype(int)
  s = np.asarray(scores, float)
  pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
  fpr_grid = np.linspace(0, 1, grid)
  curves = np.empty((n, grid))
  for b in range(n):
    idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
    f, t = roc_curve(y[idx], s[idx])
    curves[b] = np.interp(fpr_grid, f, t)  # f is non-decreasing; right-most tpr at ties
  q = (1 - level) / 2
  return fpr_grid, np.quantile(curves, q, axis=0), np.quantile(curves, 1 - q, axis=0)


def mean_std(x: Array, mask: Array | None = None) -> tuple[Array, Array]:
  """Per-column mean and (population) std of ``x [N, D]`` over the rows where ``mask`` (bool or
  0/1 [N]; None: all): ([D], [D]), jit-able with a traced mask. Callers guard the std against
  0 their own way (a floor for the head, ``+ 1e-6`` for the ridge baselines)."""
  x = jnp.asarray(x, jnp.float32)
  m = jnp.ones(x.shape[0]) if mask is None else jnp.asarray(mask, jnp.float32)
  n = jnp.sum(m)
  mean = (m @ x) / n
  return mean, jnp.sqrt((m @ (x - mean) ** 2) / n)
