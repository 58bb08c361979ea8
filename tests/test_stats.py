"""Metrics against hand-computed values on tiny examples."""
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

from gradejax import stats


def test_confusion_recall_balanced_accuracy():
  y = jnp.array([0, 0, 0, 1, 1])
  p = jnp.array([0, 1, 0, 1, 0])
  cm = stats.confusion_matrix(y, p, 2)
  np.testing.assert_array_equal(cm, [[2, 1], [1, 1]])
  np.testing.assert_allclose(stats.per_class_recall(cm), [2 / 3, 1 / 2])
  assert float(stats.balanced_accuracy(y, p, 2)) == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_roc_auc_with_ties_by_hand():
  # Positives scores {0.8, 0.4}, negatives {0.4, 0.1}: pairs (0.8>0.4)=1, (0.8>0.1)=1,
  # (0.4=0.4)=1/2, (0.4>0.1)=1 -> 3.5 / 4.
  y = jnp.array([1, 1, 0, 0])
  s = jnp.array([0.8, 0.4, 0.4, 0.1])
  assert float(stats.roc_auc(y, s)) == pytest.approx(0.875)
  probs = jnp.stack([1 - s, s], axis=1)
  assert float(stats.roc_auc(y, probs)) == pytest.approx(0.875)
  assert float(stats.roc_auc(y, -s)) == pytest.approx(0.125)


def test_average_precision_by_hand():
  # Sorted: 0.9(+) 0.8(-) 0.7(+) 0.2(-): precision at the positives 1/1 and 2/3.
  y = jnp.array([1, 0, 1, 0])
  s = jnp.array([0.9, 0.8, 0.7, 0.2])
  assert float(stats.average_precision(y, s)) == pytest.approx((1 + 2 / 3) / 2)
  # A tie between a positive and a negative at the top shares one threshold: precision 1/2.
  y2, s2 = jnp.array([1, 0, 0]), jnp.array([0.5, 0.5, 0.1])
  assert float(stats.average_precision(y2, s2)) == pytest.approx(0.5)


def test_mcc_binary_formula_and_degenerate():
  y = jnp.array([1, 1, 1, 0, 0, 0, 0])
  p = jnp.array([1, 1, 0, 0, 0, 1, 0])
  tp, tn, fp, fn = 2, 3, 1, 1
  want = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
  assert float(stats.mcc(y, p, 2)) == pytest.approx(want, rel=1e-5)
  assert float(stats.mcc(y, jnp.zeros_like(y), 2)) == 0.0


def test_ranks_spearman_mae_against_scipy():
  rng = np.random.default_rng(0)
  a = rng.integers(0, 5, 30).astype(np.float32)  # many ties
  b = (a + rng.normal(size=30)).astype(np.float32)
  np.testing.assert_allclose(stats.ranks(jnp.asarray(a)), sps.rankdata(a))
  assert float(stats.spearman(jnp.asarray(a), jnp.asarray(b))) == pytest.approx(
      sps.spearmanr(a, b).statistic, abs=1e-5)
  assert float(stats.mae(jnp.array([1.0, 2.0]), jnp.array([2.0, 4.0]))) == pytest.approx(1.5)


def test_roc_auc_matches_mann_whitney_u():
  rng = np.random.default_rng(1)
  y = rng.integers(0, 2, 50)
  s = np.round(rng.normal(size=50) + y, 1)  # rounding makes ties
  u = sps.mannwhitneyu(s[y == 1], s[y == 0]).statistic
  want = u / ((y == 1).sum() * (y == 0).sum())
  assert float(stats.roc_auc(jnp.asarray(y), jnp.asarray(s))) == pytest.approx(want, rel=1e-6)


def test_multiclass_macro_one_vs_rest():
  y = jnp.array([0, 1, 2, 2])
  probs = jnp.eye(3)[jnp.array([0, 1, 2, 2])] * 0.9 + 0.05
  assert float(stats.roc_auc(y, probs)) == pytest.approx(1.0)
  assert float(stats.balanced_accuracy(y, jnp.array([0, 1, 2, 0]), 3)) == pytest.approx(
      (1 + 1 + 0.5) / 3)


# --- the shared helpers against the formulas they replaced (kept here as the references) --------

def _old_pairwise_auc(positive, score):
  """stats.binary_roc_auc before it became rank-based (the O(N^2) Mann-Whitney count)."""
  pos = positive.astype(jnp.float32)
  neg = 1.0 - pos
  gt = (score[:, None] > score[None, :]).astype(jnp.float32)
  eq = (score[:, None] == score[None, :]).astype(jnp.float32)
  return (pos @ (gt + 0.5 * eq) @ neg) / (jnp.sum(pos) * jnp.sum(neg))


def _old_rank_auc(positive, score):
  """evaluation.crossval.rank_auc before it called stats."""
  pos = positive.astype(jnp.float32)
  srt = jnp.sort(score)
  rank = (jnp.searchsorted(srt, score, 'left') + jnp.searchsorted(srt, score, 'right') + 1) / 2
  n1 = jnp.sum(pos)
  return (jnp.sum(rank * pos) - n1 * (n1 + 1) / 2) / (n1 * (pos.shape[0] - n1))


def test_one_roc_auc_equals_both_old_ones_bit_for_bit():
  rng = np.random.default_rng(0)
  for n in (7, 431):
    y = jnp.asarray(rng.integers(0, 2, n) > 0)
    s = jnp.asarray(np.round(rng.normal(size=n), 1), jnp.float32)  # many ties
    got = float(stats.binary_roc_auc(y, s))
    if 0 < int(y.sum()) < n:
      assert got == float(_old_pairwise_auc(y, s)) == float(_old_rank_auc(y, s))
  assert np.isnan(float(stats.binary_roc_auc(jnp.ones(4, bool), jnp.arange(4.0))))
  # the ROC curve's trapezoid area is the same number
  y, s = rng.integers(0, 2, 80), np.round(rng.normal(size=80), 1)
  fpr, tpr = stats.roc_curve(y, s)
  area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
  assert area == pytest.approx(float(stats.binary_roc_auc(jnp.asarray(y == 1),
                                                          jnp.asarray(s, jnp.float32))), abs=1e-6)


def test_bootstrap_indices_are_the_old_draws():
  old = np.random.default_rng(5).integers(0, 37, size=(11, 37))
  np.testing.assert_array_equal(stats.bootstrap_indices(37, 11, 5), old)
  assert stats.bootstrap_indices(3, 0, 1).shape == (0, 3)


def test_mean_std_equals_the_three_old_standardisations():
  rng = np.random.default_rng(1)
  x = rng.normal(3.0, 2.0, (50, 4)).astype(np.float32)
  mask = rng.random(50) > 0.3
  mean, std = (np.asarray(v) for v in stats.mean_std(jnp.asarray(x), jnp.asarray(mask)))
  m = jnp.asarray(mask, jnp.float32)  # classifier.norm_stats / crossval.ridge_oof, as they were
  old_mean = (m @ x) / jnp.sum(m)
  old_std = jnp.sqrt((m @ (x - old_mean) ** 2) / jnp.sum(m))
  np.testing.assert_array_equal(mean, old_mean)
  np.testing.assert_array_equal(std, old_std)
  # crossval.ridge_grade's numpy form, to float32 rounding
  np.testing.assert_allclose(mean, x[mask].mean(0), rtol=1e-6)
  np.testing.assert_allclose(std, x[mask].std(0), rtol=1e-5)
  all_mean, _ = stats.mean_std(x)
  np.testing.assert_allclose(all_mean, x.mean(0), rtol=1e-6)
