"""Concept tests: TCAV (Kim et al., ICML 2018), "does the network's class score rise along a
human concept?", answered from example images of the concept instead of from pixels.

1. Activations at a named tap (``layer``, a :func:`gradejax.nets.tap` name) of the concept's
   images and of random counterexamples, flattened to ``[N, D]``.
2. A concept activation vector (CAV): the unit normal of a linear classifier separating the
   concept from one random set (L2-regularised logistic regression, solved exactly by Newton
   steps in the span of the examples, :func:`train_cav`).
3. The TCAV score of a class: the share of its examples whose score's directional derivative
   along the CAV is positive, ``mean_x [grad_layer score_k(x) . v > 0]``. The gradients are
   computed once per example (one backward pass each) and shared by every CAV.
4. A CAV can separate any two sets of images, so one score means nothing alone: it is repeated
   against ``runs`` (>= 20) random counterexample sets, and the same is done for a random set
   posing as the concept; a two-sided t-test between the two lists of scores gives the
   p-value, Holm-adjusted over the concepts tested (Kim et al. section 3.2).

Differences from captum's ``TCAV`` by design: captum's default CAV is scikit-learn's
SGDClassifier (a hinge loss, stochastic); ours is a deterministic logistic regression (both are
linear separators; fed the same CAV, captum's scores equal ours: benchmarks/tcav_captum.py).
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special, stats

from gradejax import nets
from gradejax.attribution.common import as_targets, class_score, method
from gradejax.evaluation import ledger

Array = jax.Array


@method('layer')
def _acts(fn: nets.ModelFn, images: Array, *, layer: str) -> Array:
  _, acts = fn(images)
  if layer not in acts:
    raise KeyError(f'tcav: no tap named {layer!r}; taps: {sorted(acts)}')
  return acts[layer].reshape(images.shape[0], -1)


def activations(fn: nets.ModelFn, images: np.ndarray, layer: str, batch: int = 32,
                precision: str | None = 'highest') -> np.ndarray:
  """Activations at tap ``layer`` of ``images`` [N, H, W, 3] in [0, 1], flattened: float32
  [N, D], ``batch`` images per call (the last call padded, so one compile serves all)."""
  return _map_batches(lambda x: _acts(fn, x, layer=layer, precision=precision), batch,
                      np.asarray(images, np.float32))


@method('layer', 'score')
def _grads(fn: nets.ModelFn, images: Array, targets: Array, *, layer: str,
           score: str) -> Array:
  t = as_targets(targets, images.shape[0])
  _, acts = jax.eval_shape(fn, images)
  if layer not in acts:
    raise KeyError(f'tcav: no tap named {layer!r}; taps: {sorted(acts)}')
  zero = {layer: jnp.zeros(acts[layer].shape, acts[layer].dtype)}

  def total(p):  # images do not interact, so the sum's gradient is each image's own
    out, _ = fn(images, perturbations=p)
    return jnp.sum(class_score(out, t, score))

  return jax.grad(total)(zero)[layer].reshape(images.shape[0], -1)


def layer_gradients(fn: nets.ModelFn, images: np.ndarray, targets, layer: str, *,
                    score: str = 'logit', batch: int = 32,
                    precision: str | None = 'highest') -> np.ndarray:
  """d score_target / d activation at tap ``layer``, flattened: float32 [N, D] (``score``:
  'logit' or 'contrast', :func:`gradejax.attribution.common.class_score`); ``targets`` int or
  int [N]."""
  x = np.asarray(images, np.float32)
  t = np.broadcast_to(np.asarray(targets, np.int32), (len(x),))
  return _map_batches(lambda xi, ti: _grads(fn, xi, ti, layer=layer, score=score,
                                            precision=precision), batch, x, t)


def _map_batches(f, batch: int, *arrays: np.ndarray) -> np.ndarray:
  n_all, out = len(arrays[0]), []
  for i in range(0, n_all, batch):
    parts = [a[i:i + batch] for a in arrays]
    n = len(parts[0])
    if n < batch and n_all > batch:  # pad the last call to the compiled shape
      parts = [np.concatenate([p, np.repeat(p[-1:], batch - n, axis=0)]) for p in parts]
    out.append(np.asarray(f(*[jnp.asarray(p) for p in parts]))[:n])
  return np.concatenate(out)


def train_cav(concept: np.ndarray, counter: np.ndarray, *, l2: float = 0.01,
              newton_steps: int = 50) -> tuple[np.ndarray, float]:
  """A concept activation vector: the unit weight vector of an L2-regularised logistic
  regression, concept (y = 1) vs counterexamples (y = 0).

  ``concept`` [Nc, D], ``counter`` [Nr, D]. The examples are centred on their mean and divided
  by their root mean squared norm (so ``l2`` means the same at every layer); then
  ``mean log-loss + l2/2 |w|^2`` is minimised over ``w`` and an unpenalised intercept. By the
  representer theorem ``w`` lies in the span of the examples, so damped Newton steps run in
  the n = Nc + Nr dimensional span (exact to float64, whatever D). Returns (cav float32 [D],
  unit length, in the activations' own coordinates; the training accuracy).
  """
  x = np.concatenate([concept, counter]).astype(np.float64)
  y = np.concatenate([np.ones(len(concept)), np.zeros(len(counter))])
  xc = x - x.mean(axis=0)
  scale = np.sqrt(np.mean(np.sum(xc ** 2, axis=1)))
  if not np.isfinite(scale) or scale == 0:
    raise ValueError('tcav: the concept and counterexample activations are identical at this '
                     'layer (no CAV); choose another layer or other concept images')
  xc = xc / scale
  n = len(x)
  k = xc @ xc.T  # [n, n]

  def objective(alpha, b):
    f = k @ alpha + b
    return np.mean(np.logaddexp(0.0, f) - y * f) + 0.5 * l2 * alpha @ k @ alpha

  alpha, b = np.zeros(n), 0.0
  for _ in range(newton_steps):
    p = special.expit(k @ alpha + b)
    r = (p - y) / n  # d loss / d f
    s = p * (1 - p) / n
    # Gradient in (alpha, b): [K (r + l2 alpha), sum r]; Hessian [[K S K + l2 K, K s],
    # [s^T K, sum s]]. K may be singular: the system premultiplied by K^+ has the same step,
    # [[S K + l2 I, s], [s^T K, sum s]] [da, db] = [r + l2 alpha, sum r].
    top = np.concatenate([s[:, None] * k + l2 * np.eye(n), s[:, None]], axis=1)
    bottom = np.concatenate([s @ k, [s.sum() + 1e-12]])[None]
    rhs = np.concatenate([r + l2 * alpha, [r.sum()]])
    step = np.linalg.lstsq(np.concatenate([top, bottom]), rhs, rcond=None)[0]
    j0, t = objective(alpha, b), 1.0
    while t > 1e-6 and objective(alpha - t * step[:n], b - t * step[n]) > j0:
      t /= 2  # backtracking keeps every step a descent step
    alpha, b = alpha - t * step[:n], b - t * step[n]
    if t * np.abs(step).max() < 1e-10:
      break
  w = xc.T @ alpha / scale  # back in the activations' coordinates
  acc = float(np.mean(((k @ alpha + b) > 0) == (y > 0)))
  return (w / np.linalg.norm(w)).astype(np.float32), acc


def tcav_scores(gradients: np.ndarray, cavs: np.ndarray) -> np.ndarray:
  """Share of examples with a positive directional derivative: ``gradients`` [N, D] of the
  class's examples, ``cavs`` [R, D] -> [R] in [0, 1]."""
  return np.mean(np.asarray(gradients, np.float64) @ np.asarray(cavs, np.float64).T > 0,
                 axis=0)


@dataclasses.dataclass(frozen=True)
class ConceptTest:
  """One concept against one class. ``scores`` [R]: TCAV of the concept's CAVs (one per random
  counterexample set); ``null`` [R]: TCAV of a random set posing as the concept against the
  same counterexamples; ``p``: two-sided t-test between them; ``p_holm``: Holm-adjusted over
  the concepts of the same call; ``accuracy``: mean training accuracy of the concept's CAVs."""
  concept: str
  target: int
  scores: np.ndarray
  null: np.ndarray
  p: float
  p_holm: float
  accuracy: float

  @property
  def score(self) -> float:
    return float(np.mean(self.scores))

  def significant(self, alpha: float = 0.05) -> bool:
    return bool(self.p_holm < alpha)


def random_sets(n_pool: int, size: int, count: int, key: Array) -> np.ndarray:
  """``count`` index sets of ``size`` draws without replacement from ``range(n_pool)`` (each
  set independently, from ``fold_in(key, i)``): int [count, size]."""
  if size > n_pool:
    raise ValueError(f'tcav: random sets of {size} images need at least {size} random images; '
                     f'the random folder has {n_pool}')
  return np.stack([np.asarray(jax.random.permutation(jax.random.fold_in(key, i), n_pool))[:size]
                   for i in range(count)])


def tcav(concepts: Mapping[str, np.ndarray], random: np.ndarray, gradients: np.ndarray,
         target: int, *, key: Array, runs: int = 20, set_size: int | None = None,
         l2: float = 0.01) -> list[ConceptTest]:
  """The TCAV test of every concept for one class, from activations and gradients.

  Args:
    concepts: name -> activations [Nc, D] of the concept's images at the tap.
    random: activations [Nr, D] of random images (the counterexample pool).
    gradients: [N, D] :func:`layer_gradients` of the class's examples for class ``target``.
    key: PRNG key for the random sets; runs: random counterexample sets (>= 20, Kim et al.);
    set_size: images per random set (default: the smallest concept's size, at most half the
      pool); l2: the CAV's regularisation.

  ``2 runs`` random sets are drawn: sets 0..runs-1 are the counterexamples of both the
  concept's run i and the null's run i, and in null run i the fresh set ``runs + i`` poses as
  the concept (a fresh one per run: one fixed random "concept" for all runs, as captum's
  tutorial does, makes the null CAVs share its direction and their scores move together).
  The two-sided t-test treats the lists as independent samples, as Kim et al. do.
  """
  if runs < 2:
    raise ValueError(f'tcav: runs must be >= 2 (Kim et al. use >= 20); got {runs}')
  if not concepts:
    raise ValueError('tcav: no concepts given')
  size = set_size or min(min(len(a) for a in concepts.values()), len(random) // 2)
  sets = random_sets(len(random), size, 2 * runs, key)
  null_cavs = [train_cav(random[sets[runs + i]], random[sets[i]], l2=l2)[0]
               for i in range(runs)]
  null = tcav_scores(gradients, np.stack(null_cavs))
  raw = []
  for name, acts in concepts.items():
    cavs, accs = zip(*[train_cav(acts, random[sets[i]], l2=l2) for i in range(runs)])
    s = tcav_scores(gradients, np.stack(cavs))
    if np.all(s == s[0]) and np.all(null == null[0]) and s[0] == null[0]:
      p = 1.0  # identical constants: no evidence either way (scipy would return NaN)
    else:
      p = float(stats.ttest_ind(s, null).pvalue)
    raw.append((name, s, p, float(np.mean(accs))))
  adjusted = ledger.holm([r[2] for r in raw])
  return [ConceptTest(name, int(target), s, null, p, float(ph), acc)
          for (name, s, p, acc), ph in zip(raw, adjusted)]


def run_tcav(fn: nets.ModelFn, concept_images: Mapping[str, np.ndarray],
                  random_images: np.ndarray, class_images: np.ndarray, target: int, *,
                  layer: str, key: Array, runs: int = 20, set_size: int | None = None,
                  score: str = 'logit', l2: float = 0.01, batch: int = 32,
                  precision: str | None = 'highest') -> list[ConceptTest]:
  """TCAV end to end from images (all [N, H, W, 3] in [0, 1]): the activations of the
  concept and random images and the layer gradients of ``class_images`` for class ``target``
  at tap ``layer``, then :func:`tcav`. Each image passes through the network once."""
  acts = {name: activations(fn, imgs, layer, batch, precision)
          for name, imgs in concept_images.items()}
  rand = activations(fn, random_images, layer, batch, precision)
  grads = layer_gradients(fn, class_images, target, layer, score=score, batch=batch,
                          precision=precision)
  return tcav(acts, rand, grads, target, key=key, runs=runs, set_size=set_size, l2=l2)


def read_concept_folders(root, names: Sequence[str] | None = None, size: int = 150
                         ) -> dict[str, np.ndarray]:
  """Concept folders ``root/<name>/*.png|jpg`` -> name -> images float32 [N, size, size, 3] in
  [0, 1] (resized to ``size`` if they are not chips already). ``random`` is one of them."""
  import pathlib
  from PIL import Image
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f'concept folder {root} does not exist (expected {root}/<concept>/'
                            f'*.png and {root}/random/*.png)')
  dirs = [root / n for n in names] if names else sorted(p for p in root.iterdir() if p.is_dir())
  out = {}
  for d in dirs:
    files = sorted(f for f in d.glob('*') if f.suffix.lower() in ('.png', '.jpg', '.jpeg'))
    if not files:
      raise ValueError(f'concept folder {d} holds no .png/.jpg images')
    out[d.name] = np.stack([np.asarray(Image.open(f).convert('RGB').resize((size, size)),
                                       np.float32) / 255.0 for f in files])
  if 'random' not in out:
    raise ValueError(f'{root} needs a random/ folder of counterexample images beside the '
                     f'concepts (found {sorted(out)})')
  return out
