"""Cross-validated heads on fixed features, vectorised over folds, repeats and permutations.

One compiled program trains every (permutation, repeat, fold) head side by side: full-batch
Adam on standardised features (``widths=()`` is L2-regularised logistic regression, else a
small MLP), out-of-fold probabilities pooled per repeat, the CV score averaged over repeats.
Baselines for the verdict live here too: the majority class and the image-statistics model.
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
from gradejax import stats
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


def permutation_scores(h: CVHead, x: np.ndarray, y: np.ndarray, folds: np.ndarray, key: Array,
                       num_permutations: int, chunk: int, seed: int) -> np.ndarray:
  """CV scores [num_permutations] with labels shuffled (same folds, same head init keys).

  Permutations come from ``np.random.default_rng(seed)``; ``chunk`` of them per compiled call
  (the last chunk padded) bounds memory.
  """
  rng = np.random.default_rng(seed)
  perms = np.stack([rng.permutation(len(y)) for _ in range(num_permutations)])
  k = int(folds.max()) + 1
  x, folds_j = jnp.asarray(x), jnp.asarray(folds)
  out = []
  for s in range(0, num_permutations, chunk):
    p = perms[s:s + chunk]
    real = len(p)
    if real < chunk:
      p = np.concatenate([p, np.repeat(p[-1:], chunk - real, axis=0)])
    ys = jnp.asarray(np.asarray(y)[p])
    out.append(np.asarray(_scores_of_labels(h, x, ys, folds_j, key, k))[:real])
  return np.concatenate(out)


def p_value(observed_score: float, null: np.ndarray) -> float:
  """(1 + #{null >= observed}) / (1 + #null): never 0, valid for a finite permutation test."""
  return float((1 + np.sum(null >= observed_score)) / (1 + len(null)))


def bootstrap(h: CVHead, y: np.ndarray, oof: np.ndarray, n: int, seed: int, chunk: int = 100
              ) -> np.ndarray:
  """CV scores [n] on examples resampled with replacement (the same draw for every repeat)."""
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, len(y), size=(n, len(y)))
  y_j, oof_j = jnp.asarray(y), jnp.asarray(oof)
  fn = jax.jit(jax.vmap(lambda i: cv_score(h, y_j[i], oof_j[:, i])))
  return np.concatenate([np.asarray(fn(jnp.asarray(idx[s:s + chunk])))
                         for s in range(0, n, chunk)])


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
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
    a, b = (x[tr] - mu) / sd, (x[te] - mu) / sd
    gm = grade[tr].mean()
    coef = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (grade[tr] - gm))
    pred[te], base[te] = b @ coef + gm, gm
  g = jnp.asarray(grade, jnp.float32)
  return {'mae': float(stats.mae(g, jnp.asarray(pred))),
          'mae_predicting_mean': float(stats.mae(g, jnp.asarray(base))),
          'spearman': float(stats.spearman(g, jnp.asarray(pred)))}
