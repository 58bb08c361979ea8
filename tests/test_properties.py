"""Property-based tests (hypothesis) of the statistics behind the verdict (issue 22).

Permutation p-values lie in [1/(n+1), 1] and fall as the observed score rises; ROC-AUC (both
implementations) equals scipy's Mann-Whitney U / (n0 n1) and is invariant to strictly
increasing transforms of the scores; Holm-adjusted p-values keep the raw order, are >= the raw
ones and <= 1; the percentile bootstrap CI contains the point estimate; the power statement's
minimum detectable AUC is detected with the stated power in a simulation with unequal classes.
Example counts are small and the profile is derandomised, so the file runs in seconds and CI
sees the same examples every run.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from gradejax import stats
from gradejax.evaluation import crossval, ledger, power

PROFILE = settings(derandomize=True, max_examples=25, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)


@PROFILE
@given(null=st.lists(finite, min_size=1, max_size=60), a=finite, b=finite)
def test_permutation_p_value_range_and_monotone(null, a, b):
  null = np.asarray(null, np.float32)
  n = len(null)
  lo, hi = min(a, b), max(a, b)
  p_lo, p_hi = crossval.p_value(lo, null), crossval.p_value(hi, null)
  for p in (p_lo, p_hi):
    assert 1 / (n + 1) <= p <= 1
  assert p_hi <= p_lo  # a higher observed score is never less significant
  assert crossval.p_value(float(null.max()) + 1.0, null) == pytest.approx(1 / (n + 1))
  assert crossval.p_value(float(null.min()), null) == 1.0


N_AUC = 24  # one shape for every example: one compile per implementation
labels_and_scores = st.tuples(
    st.lists(st.booleans(), min_size=N_AUC, max_size=N_AUC).filter(lambda y: 0 < sum(y) < N_AUC),
    st.lists(st.integers(-20, 20), min_size=N_AUC, max_size=N_AUC))
AUCS = {'stats.binary_roc_auc': jax.jit(stats.binary_roc_auc),
        'crossval.rank_auc': jax.jit(crossval.rank_auc)}


@PROFILE
@given(labels_and_scores)
def test_roc_auc_is_mann_whitney_u_and_rank_invariant(data):
  y, s = np.asarray(data[0]), np.asarray(data[1], np.float32)  # integer scores: ties happen
  n1, n0 = int(y.sum()), int((~y).sum())
  u = scipy_stats.mannwhitneyu(s[y], s[~y], alternative='two-sided').statistic
  want = u / (n1 * n0)
  for auc in AUCS.values():
    assert float(auc(jnp.asarray(y), jnp.asarray(s))) == pytest.approx(want, abs=1e-6)
    # Strictly increasing transforms (exact in float32 on these integers) keep the ranks.
    for t in (lambda v: 3 * v + 7, lambda v: v ** 3, lambda v: np.exp(v / 8)):
      got = float(auc(jnp.asarray(y), jnp.asarray(t(s).astype(np.float32))))
      assert got == pytest.approx(want, abs=1e-6)


@PROFILE
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=12))
def test_holm_adjusted_p_monotone_and_above_raw(p):
  adj = np.asarray(ledger.holm(p))
  raw = np.asarray(p)
  assert np.all(adj >= raw - 1e-12) and np.all(adj <= 1.0)
  order = np.argsort(raw, kind='stable')
  assert np.all(np.diff(adj[order]) >= -1e-12)  # same order as the raw p-values
  # The smallest raw p is multiplied by m (capped at 1), as Holm's first step.
  assert adj[order[0]] == pytest.approx(min(1.0, len(p) * raw[order[0]]))


def test_holm_by_hand():
  # m = 4, sorted 0.01, 0.02, 0.03, 0.5: 0.04, max(0.04, 0.06), max(.., 0.06), min(1, 0.5 * 1).
  np.testing.assert_allclose(ledger.holm([0.03, 0.5, 0.01, 0.02]), [0.06, 0.5, 0.04, 0.06])


N_BOOT = 60
_point = jax.jit(functools.partial(crossval.ridge_cv_score, 'roc_auc', num_classes=2))


@PROFILE
@given(seed=st.integers(0, 2 ** 16), n1=st.integers(8, 30), signal=st.floats(0.0, 2.0))
def test_bootstrap_ci_contains_the_point_estimate(seed, n1, signal):
  # One shape for every example (one compile): N fixed, the class balance and signal vary.
  rng = np.random.default_rng(seed)
  y = (np.arange(N_BOOT) < n1).astype(np.int32)
  s = rng.normal(size=N_BOOT) + signal * y
  oof = np.stack([-s, s], axis=-1)[None].astype(np.float32)  # [R=1, N, C=2]
  point = float(_point(jnp.asarray(y), jnp.asarray(oof)))
  boot = crossval.fast_bootstrap('roc_auc', y, oof, 2, n=200, seed=seed)
  # A resample that misses the smaller class has no AUC (nan): the CI is over the others
  # (np.percentile would turn the whole CI into nan; see the report of issue 22's helper).
  lo, hi = np.nanpercentile(boot, [2.5, 97.5])
  assert lo <= point <= hi


def _simulated_power(auc, n1, n0, threshold, sims, rng):
  """Rejection rate of 'AUC_hat > threshold' with binormal equal-variance scores of true AUC
  ``auc`` (separation sqrt(2) Phi^-1(auc))."""
  d = np.sqrt(2) * scipy_stats.norm.ppf(auc)
  pos = rng.normal(d, 1, size=(sims, n1))
  neg = rng.normal(0, 1, size=(sims, n0))
  r = scipy_stats.rankdata(np.concatenate([pos, neg], axis=1), axis=1)
  auc_hat = (r[:, :n1].sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)
  return float(np.mean(auc_hat > threshold))


@settings(PROFILE, max_examples=6)
@given(n1=st.integers(15, 60), extra=st.integers(10, 80))
def test_power_statement_matches_a_simulation(n1, extra):
  # Unequal classes in either order: the statement must use the two class counts themselves.
  counts = [n1 + extra, n1] if extra % 2 else [n1, n1 + extra]
  s = power.power_statement(counts, alpha=0.05, null_quantile=None, metric='roc_auc')
  assert s['n_per_class'] == [n1, n1 + extra]
  mda = s['min_detectable_auc']
  t = 0.5 + scipy_stats.norm.ppf(0.95) * power.hanley_mcneil_se(0.5, n1, n1 + extra)
  rng = np.random.default_rng(n1 * 1000 + extra)
  got = _simulated_power(mda, n1, n1 + extra, t, 4000, rng)
  assert got == pytest.approx(0.8, abs=0.04)
  # The same threshold as a permutation-null quantile gives the same answer.
  s_null = power.power_statement(counts, 0.05, t, 'roc_auc')
  assert s_null['min_detectable_auc'] == pytest.approx(mda, abs=1e-6)


def test_hanley_mcneil_se_by_hand():
  # A = 0.8, n1 = 10, n0 = 40: Q1 = 0.8/1.2 = 2/3, Q2 = 1.28/1.8 = 32/45,
  # var = (0.16 + 9 (2/3 - 0.64) + 39 (32/45 - 0.64)) / 400 = (0.16 + 0.24 + 2.77333) / 400.
  want = np.sqrt((0.16 + 9 * (2 / 3 - 0.64) + 39 * (32 / 45 - 0.64)) / 400)
  assert power.hanley_mcneil_se(0.8, 10, 40) == pytest.approx(want, rel=1e-12)
  assert want == pytest.approx(0.08907, abs=1e-5)


def test_power_statement_uses_the_null_quantile_only_for_roc_auc():
  normal = power.power_statement([30, 50], 0.05, None, 'roc_auc')
  strict = power.power_statement([30, 50], 0.05, 0.7, 'roc_auc')  # a stricter null quantile
  assert strict['threshold'] == 'permutation null' and normal['threshold'] != strict['threshold']
  assert strict['min_detectable_auc'] > normal['min_detectable_auc'] + 0.05
  # Another metric's null is on another scale: the normal threshold, the same answer.
  other = power.power_statement([30, 50], 0.05, 0.7, 'balanced_accuracy')
  assert other['threshold'] == normal['threshold']
  assert other['min_detectable_auc'] == pytest.approx(normal['min_detectable_auc'])
  # A class with no examples is not a class (more than two classes: smallest vs the rest).
  assert power.power_statement([0, 30, 50], 0.05, None, 'roc_auc') == normal
  assert power.power_statement([30, 20, 30], 0.05, None, 'roc_auc')['n_per_class'] == [20, 60]
  # One example in a class still has an answer (detectable only near 1); none has not.
  assert 0.9 < power.min_detectable_auc(1, 50) <= 1.0
  assert np.isnan(power.min_detectable_auc(0, 50))


def test_score_by_metric_name_by_hand():
  # 4 examples, labels 0 0 1 1, probs of class 1: 0.2 0.6 0.4 0.9 -> predicted 0 1 0 1.
  # ROC-AUC: pairs (pos, neg) won: 0.4 > 0.2, 0.9 > both -> 3/4. Recall per class 1/2, 1/2 ->
  # balanced accuracy 1/2; MCC (TP 1, TN 1, FP 1, FN 1) = 0.
  y = jnp.asarray([0, 0, 1, 1])
  p1 = np.array([0.2, 0.6, 0.4, 0.9], np.float32)
  probs = jnp.asarray(np.stack([1 - p1, p1], axis=1))
  assert float(stats.score('roc_auc', y, probs, 2)) == pytest.approx(0.75)
  assert float(stats.score('balanced_accuracy', y, probs, 2)) == pytest.approx(0.5)
  assert float(stats.score('mcc', y, probs, 2)) == pytest.approx(0.0, abs=1e-7)
  # Predictions 0 0 1 1 with one more confident column: both metrics perfect.
  sure = jnp.asarray([[0.9, 0.1], [0.7, 0.3], [0.4, 0.6], [0.1, 0.9]])
  assert float(stats.score('balanced_accuracy', y, sure, 2)) == pytest.approx(1.0)
  assert float(stats.score('mcc', y, sure, 2)) == pytest.approx(1.0)
  with pytest.raises(ValueError, match='unknown metric'):
    stats.score('accuracy', y, probs, 2)
