"""What a null answer could have seen: the minimum detectable ROC-AUC at a given power.

Hanley & McNeil (1982): the standard error of an AUC ``A`` estimated from ``n1`` positives and
``n0`` negatives is

    SE(A)^2 = (A(1-A) + (n1-1)(Q1-A^2) + (n0-1)(Q2-A^2)) / (n1 n0),  Q1 = A/(2-A),
    Q2 = 2A^2/(1+A).

The test rejects when the observed AUC exceeds a threshold ``t`` (the permutation null's
``1 - alpha`` quantile when given: it includes the variance cross-validation adds; else the
normal approximation ``0.5 + z_{1-alpha} SE(0.5)``). The minimum detectable AUC is the
smallest ``A`` with ``P(AUC_hat > t) >= power`` under a normal ``AUC_hat ~ N(A, SE(A))``:
``A - z_power SE(A) = t``, solved by bisection.
"""
from __future__ import annotations

import math

from scipy import stats as scipy_stats


def hanley_mcneil_se(auc: float, n1: int, n0: int) -> float:
  """Standard error of an ROC-AUC from n1 positives and n0 negatives (Hanley-McNeil 1982)."""
  a = auc
  q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
  var = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)
  return math.sqrt(max(var, 0.0))


def min_detectable_auc(n1: int, n0: int, alpha: float = 0.05, power: float = 0.8,
                       threshold: float | None = None) -> float:
  """Smallest true ROC-AUC detected with probability ``power`` by a one-sided test at
  ``alpha`` (or rejecting above ``threshold``) with ``n1`` and ``n0`` examples per class."""
  if min(n1, n0) < 1:
    return float('nan')
  t = threshold if threshold is not None else (
      0.5 + scipy_stats.norm.ppf(1 - alpha) * hanley_mcneil_se(0.5, n1, n0))
  z = scipy_stats.norm.ppf(power)
  lo, hi = 0.5, 1.0 - 1e-9
  if hi - z * hanley_mcneil_se(hi, n1, n0) < t:
    return 1.0
  for _ in range(60):
    mid = (lo + hi) / 2
    if mid - z * hanley_mcneil_se(mid, n1, n0) >= t:
      hi = mid
    else:
      lo = mid
  return hi


def power_statement(class_counts, alpha: float, null_quantile: float | None, metric: str,
                    power: float = 0.8) -> dict:
  """The verdict's 'power' entry. Binary: the two class counts; more classes: the smallest
  class against the rest (conservative for a macro one-vs-rest AUC). The permutation null's
  quantile is used only when the metric is ROC-AUC (it is on another scale otherwise)."""
  counts = sorted(int(c) for c in class_counts if c > 0)
  n1, n0 = counts[0], sum(counts[1:])
  t = null_quantile if metric == 'roc_auc' else None
  return {'min_detectable_auc': min_detectable_auc(n1, n0, alpha, power, t), 'power': power,
          'alpha': alpha, 'n_per_class': [n1, n0],
          'threshold': 'permutation null' if t is not None else 'Hanley-McNeil normal',
          'method': 'Hanley-McNeil SE of the alternative; rejects above the threshold'}
