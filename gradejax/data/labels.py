"""Grades -> classes, and classes -> stratified cross-validation folds.

Swiss scale: higher is better (6 best, 4.0 pass). With a pivot, class 0 is ``below_<p>`` and
class 1 ``at_or_above_<p>``; a grade equal to the pivot goes up. With ``pivot='median'`` the
pivot is the median of the used grades, so ties at the median all go to the upper class, which
can make it larger than half when many students share the median grade. With ``bins=n`` the
thresholds are the n-quantiles of the used grades and a grade equal to a threshold also goes up.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Labelling:
  """Sorted thresholds t_1 < ... < t_{K-1}; class k holds t_k <= grade < t_{k+1}."""
  thresholds: tuple[float, ...]
  class_names: tuple[str, ...]
  rule: str  # 'pivot=4.0', 'pivot=median', 'bins=3'

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


def fmt_grade(x: float) -> str:
  """4 -> '4.0', 4.25 -> '4.25', 4.125 -> '4.125' (at most 3 decimals)."""
  s = f'{x:.3f}'.rstrip('0')
  return s + '0' if s.endswith('.') else s


def make_labelling(grades: np.ndarray, *, pivot: float | str | None = 4.0,
                   bins: int | None = None) -> Labelling:
  """Builds the class rule from the used grades (float [N]).

  Exactly one of ``pivot`` (a number, or ``'median'``) and ``bins`` (>= 2) is used; ``bins``
  wins when given.

  Raises:
    ValueError: no grades, or quantile bins that collapse because of tied grades.
  """
  grades = np.asarray(grades, dtype=np.float64)
  if bins is not None:
    if bins < 2:
      raise ValueError(f'--bins must be >= 2, got {bins}')
    if grades.size == 0:
      raise ValueError('no usable rows: cannot compute quantile bins')
    t = np.quantile(grades, np.arange(1, bins) / bins)
    if np.any(np.diff(t) <= 0) or t[0] <= grades.min():
      raise ValueError(
          f'{bins} quantile bins collapse (thresholds {", ".join(fmt_grade(v) for v in t)}): '
          'too many tied grades. Use fewer --bins or a --pivot.')
    edges = [fmt_grade(v) for v in t]
    names = ([f'q0_below_{edges[0]}']
             + [f'q{k}_{edges[k - 1]}_to_{edges[k]}' for k in range(1, bins - 1)]
             + [f'q{bins - 1}_at_or_above_{edges[-1]}'])
    return Labelling(tuple(float(v) for v in t), tuple(names), f'bins={bins}')
  if isinstance(pivot, str) and pivot.strip().lower() == 'median':
    if grades.size == 0:
      raise ValueError('no usable rows: cannot compute the median grade')
    p, rule = float(np.median(grades)), 'pivot=median'
  else:
    try:
      p = float(pivot)
    except (TypeError, ValueError):
      raise ValueError(f'--pivot must be a number or "median", got {pivot!r}') from None
    rule = f'pivot={fmt_grade(p)}'
  return Labelling((p,), (f'below_{fmt_grade(p)}', f'at_or_above_{fmt_grade(p)}'), rule)


def assign(grades: np.ndarray, labelling: Labelling) -> np.ndarray:
  """float [N] grades -> int32 [N] classes (ties at a threshold go to the upper class)."""
  t = np.asarray(labelling.thresholds, dtype=np.float64)
  return np.searchsorted(t, np.asarray(grades, dtype=np.float64), side='right').astype(np.int32)


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
  """int [N] classes -> int32 [N] fold ids in [0, k), balanced within every class.

  Each class is shuffled with ``np.random.default_rng(seed)`` and dealt round-robin, the deal
  continuing across classes so that fold sizes differ by at most one.
  """
  labels = np.asarray(labels)
  if k < 2:
    raise ValueError(f'--folds must be >= 2, got {k}')
  rng = np.random.default_rng(seed)
  folds = np.full(labels.shape, -1, dtype=np.int32)
  start = 0
  for c in np.unique(labels):
    idx = rng.permutation(np.flatnonzero(labels == c))
    folds[idx] = (start + np.arange(idx.size)) % k
    start = (start + idx.size) % k
  return folds
