"""Concept tests: TCAV (Kim et al., ICML 2018), "does the network's class score rise along a
human concept?", answered from example images of the concept instead of from pixels.

1. Activations at a named tap (``layer``, a :func:`gradejax.nets.tap` name) of the concept's
   images and of random images, flattened to ``[N, D]``.
2. A concept activation vector (CAV): the unit normal of a linear classifier separating the
   concept from one random counterexample set (L2-regularised logistic regression, solved
   exactly by Newton steps in the span of the examples, :func:`train_cavs`).
3. The TCAV score of a class: the share of its examples whose score's directional derivative
   along the CAV is positive, ``mean_x [grad_layer score_k(x) . v > 0]``. The gradients are
   computed once per example (one backward pass each) and shared by every CAV.
4. The test (:func:`tcav_classes`). A CAV separates any two sets of images, so a score means
   nothing alone. The unit of the test is the *concept*: the random folder is split into
   ``M`` disjoint random "concepts" of the concept's size and a counterexample pool; the
   concept and every random concept are each trained against the same ``runs`` (>= 20)
   counterexample sets drawn from the pool (Kim et al.'s experimental design, captum's
   experimental sets), and each gets its mean score over the runs. Under the null hypothesis
   (the concept's images are a sample like the random ones) the concept's mean score and the
   ``M`` random concepts' means are exchangeable draws, so the p-value is a two-sided t
   prediction interval for one new draw: ``t = (m - mean(null)) / (sd(null) sqrt(1 + 1/M))``,
   ``M - 1`` degrees of freedom; Holm-adjusted over the concepts.

Why not the run-level t-test (the concept's ``runs`` scores against ``runs`` random-vs-random
scores, Kim et al. section 3.2)? The concept's runs share its images, so their scores are one
correlated sample (they differ only in the counterexamples), while each null run's "concept" is
a fresh random set: the two lists have different variances for a reason that has nothing to do
with the concept, and the test rejects for concepts that are random images too (measured on the
demo's null world: 'tag', 'bald' and 'sticker' all Holm-significant, benchmarks/RESULTS.md).
Kim et al.'s own null (one fixed random "concept") has the same flaw from the other side: one
random set's own direction decides every null run. With the concept as the unit the test is
calibrated by exchangeability alone (tests/test_tcav.py: false positives over many seeds).

Why counterexample sets smaller than the concept (``counter_size``, default a tenth of it)?
A random concept's mean score is about ``Phi(sqrt(counter_size / size) Z)``: its own sampling
noise (fixed over the runs) against the counterexamples' (averaged over them). With sets of
equal size the random concepts' means spread uniformly over [0, 1] when a class's gradients
agree (a trained head's usually do: cosine ~0.6-0.8 on the demo), the sign count saturates
and a concept at 1.00 is no rarer than a random concept at 0.95. Smaller counter sets keep the
scores in Phi's linear range, where the t statistic measures the concept's shift along the
gradients in units of a random concept's sampling noise, and the random concepts' means are
close to normal (the t interval's assumption). A larger concept folder is what buys power.

Differences from captum's ``TCAV`` by design: captum's default CAV is scikit-learn's
SGDClassifier (a hinge loss, stochastic); ours is a deterministic logistic regression (both are
linear separators; fed the same CAVs and experimental sets, captum's scores equal ours:
benchmarks/tcav_captum.py). captum returns scores only; the random concepts, the split of the
random folder and the p-value are ours (its tutorial t-tests run-level scores, as Kim et al.).
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


def _split_sets(kc: np.ndarray, yc: np.ndarray, l2: float, newton_steps: int
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Batched exact logistic regression in kernel form: ``kc`` [B, n, n] the centred, scaled
  kernels, ``yc`` [B, n] labels in {0, 1}; returns (alpha [B, n], b [B]) minimising
  ``mean log-loss(K alpha + b) + l2/2 alpha K alpha`` per item (damped Newton steps, the
  damping chosen per item from 2^-0 .. 2^-20 so every step descends)."""
  bsz, n, _ = kc.shape
  alpha, b = np.zeros((bsz, n)), np.zeros(bsz)
  ts = 2.0 ** -np.arange(21)  # as the one-item loop's halving, down to 1e-6
  eye = np.eye(n)

  def objective(f, pen, y=yc):  # f [B, n] or [B, T, n], pen [B] or [B, T]: per item
    y = y if f.ndim == 2 else y[:, None]
    return np.mean(np.logaddexp(0.0, f) - y * f, axis=-1) + 0.5 * l2 * pen

  done = np.zeros(bsz, bool)
  for _ in range(newton_steps):
    f = np.einsum('bij,bj->bi', kc, alpha) + b[:, None]
    p = special.expit(f)
    r = (p - yc) / n  # d loss / d f
    s = p * (1 - p) / n
    # Gradient in (alpha, b): [K (r + l2 alpha), sum r]; Hessian [[K S K + l2 K, K s],
    # [s^T K, sum s]]. K is singular (centred): the system premultiplied by K^+ has the same
    # step, [[S K + l2 I, s], [s^T K, sum s]] [da, db] = [r + l2 alpha, sum r].
    top = np.concatenate([s[:, :, None] * kc + l2 * eye, s[:, :, None]], axis=2)
    bottom = np.concatenate([np.einsum('bi,bij->bj', s, kc), s.sum(1, keepdims=True) + 1e-12],
                            axis=1)[:, None]
    rhs = np.concatenate([r + l2 * alpha, r.sum(1, keepdims=True)], axis=1)
    step = np.linalg.solve(np.concatenate([top, bottom], axis=1), rhs[..., None])[..., 0]
    step[done] = 0
    da, db = step[:, :n], step[:, n]
    kda = np.einsum('bij,bj->bi', kc, da)
    aka, dka = np.sum(alpha * (f - b[:, None]), 1), np.sum(da * (f - b[:, None]), 1)
    dkd = np.sum(da * kda, 1)
    j0 = objective(f, aka)
    # The objective along the step, f - t (K da + db): the full step first, then (where it
    # does not descend) every shorter t at once.
    move = kda + db[:, None]
    t = np.ones(bsz)
    bad = np.nonzero(objective(f - move, aka - 2 * dka + dkd) > j0)[0]
    if len(bad):
      ft = f[bad, None] - ts[None, :, None] * move[bad, None]
      jt = objective(ft, aka[bad, None] - 2 * ts * dka[bad, None] + ts ** 2 * dkd[bad, None],
                     yc[bad])
      ok = jt <= j0[bad, None]
      t[bad] = np.where(ok.any(1), ts[np.argmax(ok, axis=1)], ts[-1])
    alpha, b = alpha - t[:, None] * da, b - t * db
    done |= t * np.abs(step).max(1) < 1e-10
    if done.all():
      break
  return alpha, b


def train_cavs(acts: np.ndarray, concept_idx: np.ndarray, counter_idx: np.ndarray, *,
               l2: float = 0.01, newton_steps: int = 50) -> tuple[np.ndarray, np.ndarray]:
  """Concept activation vectors of many (concept set, counterexample set) pairs at once.

  ``acts`` [N, D] activations; ``concept_idx`` int [B, n1] and ``counter_idx`` int [B, n0]
  rows of ``acts`` (y = 1 and y = 0). Each pair's examples are centred on their mean and
  divided by their root mean squared norm (so ``l2`` means the same at every layer); then
  ``mean log-loss + l2/2 |w|^2`` is minimised over ``w`` and an unpenalised intercept. By the
  representer theorem ``w`` lies in the span of the examples, so everything runs on one Gram
  matrix of ``acts`` (the n = n1 + n0 dimensional span of each pair, exact to float64,
  whatever D). Returns (cavs float32 [B, D], unit length, in the activations' coordinates;
  training accuracy [B]).
  """
  x = np.asarray(acts, np.float64)
  x = x - x.mean(axis=0)  # shift-invariant; keeps the Gram well conditioned
  gram = x @ x.T
  idx = np.concatenate([np.asarray(concept_idx), np.asarray(counter_idx)], axis=1)
  bsz, n = idx.shape
  y = np.concatenate([np.ones(concept_idx.shape[1]), np.zeros(counter_idx.shape[1])])
  k = gram[idx[:, :, None], idx[:, None, :]]  # [B, n, n]
  centre = np.eye(n) - 1.0 / n
  kc = centre @ k @ centre
  scale2 = np.trace(kc, axis1=1, axis2=2) / n  # mean squared norm of the centred examples
  if not np.all(np.isfinite(scale2)) or np.any(scale2 <= 0):
    raise ValueError('tcav: the concept and counterexample activations are identical at this '
                     'layer (no CAV); choose another layer or other concept images')
  kc = kc / scale2[:, None, None]
  alpha, b = _split_sets(kc, np.broadcast_to(y, (bsz, n)), l2, newton_steps)
  coef = np.zeros((bsz, len(x)))  # w = xc^T alpha / scale, xc = x_idx - its mean
  np.add.at(coef, (np.arange(bsz)[:, None], idx),
            (alpha - alpha.mean(1, keepdims=True)) / np.sqrt(scale2)[:, None])
  w = coef @ x
  acc = np.mean(((np.einsum('bij,bj->bi', kc, alpha) + b[:, None]) > 0) == (y > 0), axis=1)
  return (w / np.linalg.norm(w, axis=1, keepdims=True)).astype(np.float32), acc


def train_cav(concept: np.ndarray, counter: np.ndarray, *, l2: float = 0.01,
              newton_steps: int = 50) -> tuple[np.ndarray, float]:
  """One concept activation vector, concept [Nc, D] (y = 1) vs counterexamples [Nr, D]
  (y = 0): :func:`train_cavs` of one pair. Returns (cav float32 [D], unit length; training
  accuracy)."""
  x = np.concatenate([concept, counter])
  nc = len(concept)
  cavs, acc = train_cavs(x, np.arange(nc)[None], np.arange(nc, len(x))[None], l2=l2,
                         newton_steps=newton_steps)
  return cavs[0], float(acc[0])


def tcav_scores(gradients: np.ndarray, cavs: np.ndarray) -> np.ndarray:
  """Share of examples with a positive directional derivative: ``gradients`` [N, D] of the
  class's examples, ``cavs`` [R, D] -> [R] in [0, 1]."""
  return np.mean(np.asarray(gradients, np.float64) @ np.asarray(cavs, np.float64).T > 0,
                 axis=0)


@dataclasses.dataclass(frozen=True)
class ConceptTest:
  """One concept against one class. ``scores`` [R]: TCAV of the concept's CAVs (one per
  counterexample set); ``null`` [M]: the mean TCAV score of each random concept (a random set
  of the concept's size, against the same counterexample sets); ``p``: the two-sided t
  prediction test of the concept's mean among the random concepts' (:func:`concept_p`);
  ``p_holm``: Holm-adjusted over the concepts of the same call; ``accuracy``: mean training
  accuracy of the concept's CAVs."""
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


def concept_p(score: float, null: np.ndarray) -> float:
  """Two-sided p of a concept's mean TCAV ``score`` among ``null`` [M] random concepts' mean
  scores, exchangeable draws under the null: the t prediction interval for one new draw,
  ``t = (score - mean) / (sd sqrt(1 + 1/M))``, ``M - 1`` degrees of freedom. When the random
  concepts all score the same (sd 0), the exact exchangeability bound ``2 / (M + 1)`` if the
  concept differs from them, else 1."""
  null = np.asarray(null, np.float64)
  m = len(null)
  if m < 2:
    raise ValueError(f'tcav: the test needs >= 2 random concepts; got {m}')
  mu, sd = float(null.mean()), float(null.std(ddof=1))
  if sd == 0:
    return 1.0 if score == mu else min(1.0, 2.0 / (m + 1))
  t = (score - mu) / (sd * np.sqrt(1 + 1 / m))
  return float(2 * stats.t.sf(abs(t), m - 1))


@dataclasses.dataclass(frozen=True)
class Design:
  """Rows of the random folder: ``random_concepts`` int [M, size] (disjoint random "concepts"),
  ``counter_sets`` int [runs, counter_size] drawn from the rest (the counterexample pool)."""
  random_concepts: np.ndarray
  counter_sets: np.ndarray


MIN_RANDOM_CONCEPTS = 5


def random_needed(size: int, counter_size: int | None = None,
                  random_concepts: int = MIN_RANDOM_CONCEPTS) -> int:
  """Random images :func:`design` needs for concepts of ``size`` images."""
  return random_concepts * size + 5 * (counter_size or max(2, size // 10))


def design(n_random: int, size: int, key: Array, *, runs: int = 20,
           counter_size: int | None = None, random_concepts: int | None = None,
           max_random_concepts: int = 20) -> Design:
  """Splits ``range(n_random)`` (a permutation from ``key``) into ``random_concepts`` disjoint
  sets of ``size`` and a counterexample pool of at least ``5 counter_size`` rows, from which
  ``runs`` counterexample sets of ``counter_size`` (default ``max(2, size // 10)``) are drawn
  without replacement, each from ``fold_in(key, i)``. ``random_concepts`` None: as many as fit,
  at most ``max_random_concepts``; fewer than 5 fit: an error naming the images needed."""
  ns = counter_size or max(2, size // 10)
  fit = (n_random - 5 * ns) // size
  m = min(fit, max_random_concepts) if random_concepts is None else random_concepts
  if m < MIN_RANDOM_CONCEPTS or m > fit:
    m = max(m, MIN_RANDOM_CONCEPTS)
    raise ValueError(f'the random folder has {n_random} images; {m} random concepts of {size} '
                     f'images (the smallest concept folder\'s size) and a counterexample pool '
                     f'of {5 * ns} need {random_needed(size, counter_size, m)}: add random '
                     f'images or use smaller concept folders')
  k_split, k_sets = jax.random.split(key)
  perm = np.asarray(jax.random.permutation(k_split, n_random))
  pool = perm[m * size:]
  sets = np.stack([pool[np.asarray(jax.random.permutation(jax.random.fold_in(k_sets, i),
                                                          len(pool)))[:ns]]
                   for i in range(runs)])
  return Design(perm[:m * size].reshape(m, size), sets)


def tcav_classes(concepts: Mapping[str, np.ndarray], random: np.ndarray,
                 gradients: Mapping[int, np.ndarray], *, key: Array, runs: int = 20,
                 counter_size: int | None = None, random_concepts: int | None = None,
                 l2: float = 0.01) -> dict[int, list[ConceptTest]]:
  """The TCAV test of every concept for every class, from activations and gradients.

  Args:
    concepts: name -> activations [Nc, D] of the concept's images at the tap. The test needs
      every concept to have the random concepts' size: concepts larger than the smallest are
      subsampled to it (a draw from ``key``).
    random: activations [Nr, D] of random images (random concepts + counterexample pool).
    gradients: class -> [N, D] :func:`layer_gradients` of that class's examples.
    key: PRNG key of the split and the draws; runs: counterexample sets (>= 20, Kim et al.);
    counter_size, random_concepts: :func:`design`; l2: the CAV's regularisation.

  The CAVs do not depend on the class: ``(len(concepts) + M) * runs`` of them are trained
  once and scored on each class's gradients. Holm is applied over the concepts within a class.
  Returns class -> list of :class:`ConceptTest` in ``concepts``' order.
  """
  if runs < 2:
    raise ValueError(f'tcav: runs must be >= 2 (Kim et al. use >= 20); got {runs}')
  if not concepts:
    raise ValueError('tcav: no concepts given')
  size = min(len(a) for a in concepts.values())
  k_design, k_sub = jax.random.split(key)
  d = design(len(random), size, k_design, runs=runs, counter_size=counter_size,
             random_concepts=random_concepts)
  names = list(concepts)
  picked = [np.asarray(concepts[n]) if len(concepts[n]) == size else np.asarray(concepts[n])[
      np.sort(np.asarray(jax.random.permutation(jax.random.fold_in(k_sub, i),
                                                len(concepts[n])))[:size])]
            for i, n in enumerate(names)]
  acts = np.concatenate([np.asarray(random)] + picked)
  n_r = len(random)
  sets = [n_r + i * size + np.arange(size) for i in range(len(names))] + list(d.random_concepts)
  c_idx = np.repeat(np.stack(sets), runs, axis=0)  # [(C + M) * runs, size]
  r_idx = np.tile(d.counter_sets, (len(sets), 1))
  cavs, accs = train_cavs(acts, c_idx, r_idx, l2=l2)
  out = {}
  for target, g in gradients.items():
    s = tcav_scores(g, cavs).reshape(len(sets), runs)
    null = s[len(names):].mean(axis=1)
    ps = [concept_p(float(s[i].mean()), null) for i in range(len(names))]
    adjusted = ledger.holm(ps)
    out[int(target)] = [
        ConceptTest(n, int(target), s[i], null, ps[i], float(adjusted[i]),
                    float(accs[i * runs:(i + 1) * runs].mean()))
        for i, n in enumerate(names)]
  return out


def tcav(concepts: Mapping[str, np.ndarray], random: np.ndarray, gradients: np.ndarray,
         target: int, *, key: Array, runs: int = 20, counter_size: int | None = None,
         random_concepts: int | None = None, l2: float = 0.01) -> list[ConceptTest]:
  """:func:`tcav_classes` for one class: ``gradients`` [N, D] of class ``target``'s
  examples."""
  return tcav_classes(concepts, random, {target: gradients}, key=key, runs=runs,
                      counter_size=counter_size, random_concepts=random_concepts, l2=l2)[target]


def run_tcav_classes(fn: nets.ModelFn, concept_images: Mapping[str, np.ndarray],
                     random_images: np.ndarray, class_images: Mapping[int, np.ndarray], *,
                     layer: str, key: Array, runs: int = 20, counter_size: int | None = None,
                     random_concepts: int | None = None, score: str = 'logit', l2: float = 0.01,
                     batch: int = 32, precision: str | None = 'highest'
                     ) -> dict[int, list[ConceptTest]]:
  """TCAV end to end from images (all [N, H, W, 3] in [0, 1]): the activations of the
  concept and random images at tap ``layer`` (once), the layer gradients of each
  ``class_images[k]`` for class ``k``, then :func:`tcav_classes`. Each image passes through
  the network once."""
  acts = {name: activations(fn, imgs, layer, batch, precision)
          for name, imgs in concept_images.items()}
  rand = activations(fn, random_images, layer, batch, precision)
  grads = {int(k): layer_gradients(fn, imgs, int(k), layer, score=score, batch=batch,
                                   precision=precision) for k, imgs in class_images.items()}
  return tcav_classes(acts, rand, grads, key=key, runs=runs, counter_size=counter_size,
                      random_concepts=random_concepts, l2=l2)


def run_tcav(fn: nets.ModelFn, concept_images: Mapping[str, np.ndarray],
             random_images: np.ndarray, class_images: np.ndarray, target: int, *,
             layer: str, key: Array, runs: int = 20, counter_size: int | None = None,
             random_concepts: int | None = None, score: str = 'logit', l2: float = 0.01,
             batch: int = 32, precision: str | None = 'highest') -> list[ConceptTest]:
  """:func:`run_tcav_classes` for one class: ``class_images`` of class ``target``."""
  return run_tcav_classes(fn, concept_images, random_images, {target: class_images},
                          layer=layer, key=key, runs=runs, counter_size=counter_size,
                          random_concepts=random_concepts, score=score, l2=l2, batch=batch,
                          precision=precision)[target]


_IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')


def count_concept_folders(root) -> dict[str, int]:
  """Images per folder of ``root/<name>/`` (no image is read): for checks before any work."""
  import pathlib
  root = pathlib.Path(root)
  return {d.name: sum(f.suffix.lower() in _IMAGE_SUFFIXES for f in d.iterdir())
          for d in sorted(p for p in root.iterdir() if p.is_dir())}


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
    files = sorted(f for f in d.glob('*') if f.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
      raise ValueError(f'concept folder {d} holds no .png/.jpg images')
    out[d.name] = np.stack([np.asarray(Image.open(f).convert('RGB').resize((size, size)),
                                       np.float32) / 255.0 for f in files])
  if 'random' not in out:
    raise ValueError(f'{root} needs a random/ folder of counterexample images beside the '
                     f'concepts (found {sorted(out)})')
  return out
