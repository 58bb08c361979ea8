"""Dataset-level strategies: spectral relevance analysis (SpRAy, Lapuschkin et al., Nature
Communications 2019; reference implementation: the ``corelay`` package).

One map explains one image; SpRAy asks which *strategies* the network uses across the data by
clustering the maps of many images. Per class (the images predicted as it):

1. each map [H, W] is downsampled by block means to ``size x size`` (a strategy is a region,
   not a pixel), its negative part dropped and its sum scaled to 1 (the *shape* of the
   evidence, not its strength);
2. a symmetric k-nearest-neighbour graph (binary weights, corelay's ``SparseKNN``) and its
   normalised Laplacian ``L = I - D^-1/2 W D^-1/2``;
3. the number of clusters is the eigengap: the ``k <= max_clusters`` with the largest gap
   ``lambda_{k+1} - lambda_k`` between the Laplacian's ascending eigenvalues (k connected
   groups give k zero eigenvalues);
4. k-means (k-means++ restarts) on the row-normalised first k eigenvectors (Ng, Jordan &
   Weiss 2002).

Each cluster gets its size, class mix, mean map, exemplars (members nearest the cluster's mean
map) and, with the network, a causal check (:func:`causal_check`): the drop of the explained
score when the cluster's mean region is removed from each member, against the drop of a random
region of the same area, with bootstrap CIs. Without ground truth that check is what says a
strategy is used rather than merely drawn.

Numpy/scipy only: the few hundred maps of a fold make an eigendecomposition of an N x N
matrix, milliseconds on a host.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import scipy.cluster.vq
import scipy.linalg

from gradejax import nets
from gradejax.attribution import faithfulness, localisation
from gradejax.attribution.common import class_score


def prepare_maps(maps: np.ndarray, size: int = 16) -> np.ndarray:
  """Maps [N, H, W] -> features [N, size * size]: block means on a ``size x size`` grid (the
  image cropped to a multiple of the block), negatives clipped, each summing to 1 (a map with
  no positive mass stays 0)."""
  m = np.maximum(np.asarray(maps, np.float64), 0.0)
  n, h, w = m.shape
  if h < size or w < size:
    raise ValueError(f'spray: maps of {h}x{w} cannot be downsampled to {size}x{size}')
  bh, bw = h // size, w // size
  m = m[:, :bh * size, :bw * size].reshape(n, size, bh, size, bw).mean(axis=(2, 4))
  total = m.reshape(n, -1).sum(axis=1, keepdims=True)
  return np.where(total > 0, m.reshape(n, -1) / np.where(total > 0, total, 1.0), 0.0)


def knn_affinity(features: np.ndarray, k: int = 10) -> np.ndarray:
  """Symmetric binary k-nearest-neighbour graph [N, N] (Euclidean; i ~ j if either is among
  the other's k nearest; no self-loops)."""
  x = np.asarray(features, np.float64)
  n = len(x)
  k = max(1, min(k, n - 1))
  sq = np.sum(x ** 2, axis=1)
  d = sq[:, None] + sq[None, :] - 2 * x @ x.T
  np.fill_diagonal(d, np.inf)
  nearest = np.argsort(d, axis=1, kind='stable')[:, :k]
  w = np.zeros((n, n))
  w[np.repeat(np.arange(n), k), nearest.ravel()] = 1.0
  return np.maximum(w, w.T)


def laplacian_spectrum(affinity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Eigenvalues (ascending) [N] and eigenvectors [N, N] of the normalised Laplacian."""
  w = np.asarray(affinity, np.float64)
  deg = w.sum(axis=1)
  inv = np.where(deg > 0, 1.0 / np.sqrt(np.where(deg > 0, deg, 1.0)), 0.0)
  lap = np.eye(len(w)) - inv[:, None] * w * inv[None, :]
  vals, vecs = scipy.linalg.eigh(lap)
  return np.clip(vals, 0.0, None), vecs


def eigengap_k(eigenvalues: np.ndarray, max_clusters: int = 8) -> int:
  """The number of clusters: argmax over k in 1..max_clusters of ``lambda_{k+1} - lambda_k``
  (1-based; the eigenvalues ascending)."""
  kmax = max(1, min(max_clusters, len(eigenvalues) - 1))
  gaps = np.diff(eigenvalues[:kmax + 1])
  return int(np.argmax(gaps)) + 1


def spectral_clusters(features: np.ndarray, *, k_neighbours: int = 10, max_clusters: int = 8,
                      n_clusters: int | None = None, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
  """Cluster labels int [N] (0 .. k-1, ordered by size, largest first) and the Laplacian's
  eigenvalues [N]; ``n_clusters`` overrides the eigengap."""
  n = len(features)
  if n < 3:
    return np.zeros(n, np.int64), np.zeros(n)
  vals, vecs = laplacian_spectrum(knn_affinity(features, k_neighbours))
  k = n_clusters or eigengap_k(vals, max_clusters)
  if k == 1:
    return np.zeros(n, np.int64), vals
  emb = vecs[:, :k]
  emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
  best, best_inertia = None, np.inf
  for r in range(10):  # k-means++ restarts; keep the tightest
    cent, lab = scipy.cluster.vq.kmeans2(emb, k, minit='++', seed=seed + r, iter=50)
    inertia = np.sum((emb - cent[lab]) ** 2)
    if inertia < best_inertia:
      best, best_inertia = lab, inertia
  sizes = np.bincount(best, minlength=k)
  order = np.argsort(-sizes, kind='stable')
  relabel = np.empty(k, np.int64)
  relabel[order] = np.arange(k)
  return relabel[best], vals


@dataclasses.dataclass(frozen=True)
class Strategy:
  """One cluster of maps of the images predicted as ``predicted``.

  ``members`` int [M]: positions in the input; ``share``: M over the class's images;
  ``class_mix`` float [C]: share of members per true label; ``mean_map`` float [H, W]: the
  members' maps (negatives clipped, each summing to 1) averaged at full resolution;
  ``exemplars`` int [<= 6]: the members nearest the mean map (input positions)."""
  predicted: int
  members: np.ndarray
  share: float
  class_mix: np.ndarray
  mean_map: np.ndarray
  exemplars: np.ndarray

  @property
  def size(self) -> int:
    return int(len(self.members))


@dataclasses.dataclass(frozen=True)
class Strategies:
  """SpRAy of one class: its strategies (largest first) and the Laplacian spectrum."""
  predicted: int
  strategies: list[Strategy]
  eigenvalues: np.ndarray


def _normalised_full(maps: np.ndarray) -> np.ndarray:
  m = np.maximum(np.asarray(maps, np.float64), 0.0)
  total = m.sum(axis=(1, 2), keepdims=True)
  return np.where(total > 0, m / np.where(total > 0, total, 1.0), 0.0)


def spray(maps: np.ndarray, predicted: np.ndarray, labels: np.ndarray | None = None, *,
          num_classes: int | None = None, size: int = 16, k_neighbours: int = 10,
          max_clusters: int = 8, exemplars: int = 6, seed: int = 0) -> list[Strategies]:
  """SpRAy per predicted class.

  Args:
    maps: [N, H, W] attribution maps (higher = more relied on), e.g. extremal or occlusion.
    predicted: int [N] the class each image is predicted as (the class its map explains).
    labels: int [N] true labels for the class mix (None: the mix is of predictions).
    size: the downsampled grid side; k_neighbours, max_clusters: the graph and the eigengap's
      cap; exemplars: members shown per strategy; seed: k-means restarts.

  Returns one :class:`Strategies` per class with at least one image.
  """
  maps = np.asarray(maps)
  predicted = np.asarray(predicted).astype(np.int64)
  if len(maps) != len(predicted):
    raise ValueError(f'spray: {len(maps)} maps but {len(predicted)} predictions')
  labels = predicted if labels is None else np.asarray(labels).astype(np.int64)
  c = num_classes or int(max(predicted.max(), labels.max())) + 1
  feats = prepare_maps(maps, size)
  full = _normalised_full(maps)
  out = []
  for cls in range(c):
    idx = np.nonzero(predicted == cls)[0]
    if len(idx) == 0:
      continue
    lab, vals = spectral_clusters(feats[idx], k_neighbours=k_neighbours,
                                  max_clusters=max_clusters, seed=seed)
    strategies = []
    for j in range(int(lab.max()) + 1):
      members = idx[lab == j]
      mean_feat = feats[members].mean(axis=0)
      dist = np.sum((feats[members] - mean_feat) ** 2, axis=1)
      ex = members[np.argsort(dist, kind='stable')[:exemplars]]
      mix = np.bincount(labels[members], minlength=c) / len(members)
      strategies.append(Strategy(cls, members, len(members) / len(idx), mix,
                                 full[members].mean(axis=0), ex))
    out.append(Strategies(cls, strategies, vals))
  return out


def top_region(mean_map: np.ndarray, area: float) -> np.ndarray:
  """The ``area`` fraction of pixels with the largest mean-map values: bool [H, W] (ties by
  position)."""
  flat = np.asarray(mean_map, np.float64).ravel()
  k = max(1, int(round(area * flat.size)))
  region = np.zeros(flat.size, bool)
  region[np.argsort(-flat, kind='stable')[:k]] = True
  return region.reshape(np.shape(mean_map))


@dataclasses.dataclass(frozen=True)
class CausalCheck:
  """Removing a strategy's region from its members. ``drop``, ``random_drop``, ``excess``
  (paired difference): (mean, low, high) bootstrap CIs over members (95%, or the level
  :func:`causal_checks` was given), in score units;
  ``region`` bool [H, W]; ``area``: its fraction of the image.

  ``label_excess`` (given the members' true labels, else None): the same paired excess for
  the contrast toward each member's *true* class (its logit minus the other classes' mean):
  how much more removing the region moves the outputs away from the labels than a random
  region does. The drop says what the network reads; this says whether what it reads is
  evidence about the labels: on a network that predicts no better than chance a region can be
  read (``drop`` beats random) and still carry nothing about the labels (``label_excess``
  covers 0)."""
  drop: tuple[float, float, float]
  random_drop: tuple[float, float, float]
  excess: tuple[float, float, float]
  region: np.ndarray
  area: float
  label_excess: tuple[float, float, float] | None = None

  @property
  def beats_random(self) -> bool:
    return bool(self.excess[1] > 0)

  @property
  def informs_labels(self) -> bool | None:
    """Whether removing the region costs the true classes' contrast more than a random region
    (the CI above 0); None without labels."""
    return None if self.label_excess is None else bool(self.label_excess[1] > 0)


def random_squares(count: int, n_images: int, side: int, shape: tuple[int, int],
                   rng: np.random.Generator) -> np.ndarray:
  """``count`` random ``side`` x ``side`` squares per image: float32 [count, B, H, W]."""
  h, w = shape
  y = rng.integers(0, h - side + 1, (count, n_images))
  x = rng.integers(0, w - side + 1, (count, n_images))
  rows, cols = np.arange(h), np.arange(w)
  in_y = (rows[None, None, :] >= y[..., None]) & (rows[None, None, :] < y[..., None] + side)
  in_x = (cols[None, None, :] >= x[..., None]) & (cols[None, None, :] < x[..., None] + side)
  return (in_y[..., :, None] & in_x[..., None, :]).astype(np.float32)


def causal_check(fn: nets.ModelFn, images: np.ndarray, targets: np.ndarray, region: np.ndarray,
                 *, n_random: int = 8, fill: float = 0.0, fill_mode: str = 'inpaint',
                 blur_sigma: float = 5.0, batch: int = 16, bootstrap: int = 2000,
                 seed: int = 0, precision: str | None = 'highest',
                 labels: np.ndarray | None = None, alpha: float = 0.05) -> CausalCheck:
  """The drop of each member's target logit when ``region`` (bool [H, W], the strategy's mean
  region) is removed (:func:`gradejax.attribution.faithfulness.removal_output_drops`), against
  the mean drop over ``n_random`` random squares of the same area per image, with bootstrap
  CIs (level 1 - ``alpha``) over the members (``images`` [M, H, W, 3], ``targets`` int [M]).
  ``labels`` int [M] (the members' true classes) adds ``label_excess`` from the same forwards:
  the paired excess of the contrast toward each member's true class."""
  return causal_checks(fn, images, targets, np.asarray(region)[None], n_random=n_random,
                       fill=fill, fill_mode=fill_mode, blur_sigma=blur_sigma, batch=batch,
                       bootstrap=bootstrap, seed=seed, precision=precision, labels=labels,
                       alpha=alpha)[0]


def causal_checks(fn: nets.ModelFn, images: np.ndarray, targets: np.ndarray,
                  regions: np.ndarray, *, n_random: int = 8, fill: float = 0.0,
                  fill_mode: str = 'inpaint', blur_sigma: float = 5.0, batch: int = 16,
                  bootstrap: int = 2000, seed: int = 0, precision: str | None = 'highest',
                  labels: np.ndarray | None = None, alpha: float = 0.05
                  ) -> list[CausalCheck]:
  """:func:`causal_check` of several regions (bool [A, H, W], e.g. one mean map's top shares
  at several areas) on the same members, each against its own random squares, all removals in
  one set of forwards (members x A x (1 + ``n_random``))."""
  images = np.asarray(images, np.float32)
  m, h, w = images.shape[:3]
  regions = np.asarray(regions, bool)
  rng = np.random.default_rng(seed)
  removed = []
  for region in regions:  # [1 + R, M, H, W] each: the region, then its random squares
    side = max(1, min(h, w, int(round(np.sqrt(region.sum())))))
    removed += [np.broadcast_to(region.astype(np.float32), (1, m, h, w)),
                random_squares(n_random, m, side, (h, w), rng)]
  removed = np.concatenate(removed)  # [A * (1 + R), M, H, W]
  drops = []
  for i in range(0, m, batch):
    drops.append(np.asarray(faithfulness.removal_output_drops(
        fn, images[i:i + batch], removed[:, i:i + batch], fill=fill, fill_mode=fill_mode,
        blur_sigma=blur_sigma, precision=precision)))
  outs = np.concatenate(drops, axis=1).reshape(  # every output's drop
      (len(regions), 1 + n_random, m, -1))  # [A, 1 + R, M, K]
  ci = lambda v: localisation.bootstrap_ci(v, bootstrap, alpha, seed=seed)

  def score(o: np.ndarray, t: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(class_score(jnp.asarray(np.swapaxes(o, 0, 1)), jnp.asarray(t, jnp.int32),
                               kind))  # [M, 1 + R]
    return d[:, 0], d[:, 1:].mean(axis=1)  # the region's drop [M], the random squares' mean

  out = []
  for region, o in zip(regions, outs):
    own, other = score(o, np.asarray(targets), 'logit')
    toward = None
    if labels is not None:
      own_l, other_l = score(o, np.asarray(labels), 'contrast')
      toward = ci(own_l - other_l)
    out.append(CausalCheck(ci(own), ci(other), ci(own - other), region, float(region.mean()),
                           toward))
  return out


def choose_area(checks: list[CausalCheck]) -> int:
  """Which of one strategy's regions (:func:`causal_checks` at several areas, CIs at a
  level adjusted for the number of areas) to report: among those used (excess CI above 0),
  the one whose excess per unit area is largest -- the most concentrated region whose removal
  matters, so a small cue is not reported as a face-sized region and a broad one (a band, a
  hair style) is not missed by a region too small to remove it; without a used one, the one
  with the largest excess lower bound."""
  used = [i for i, c in enumerate(checks) if c.beats_random]
  if used:
    return max(used, key=lambda i: checks[i].excess[0] / max(checks[i].area, 1e-12))
  return max(range(len(checks)), key=lambda i: checks[i].excess[1])
