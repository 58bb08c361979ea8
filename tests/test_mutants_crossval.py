"""Group folds, the grade ridge and the incremental-validity scores, against hand-derived
answers: the gaps mutation testing found in gradejax/evaluation/crossval.py (issue 22;
benchmarks/mutation.py, RESULTS.md)."""
import numpy as np

from gradejax.evaluation import crossval


def test_group_folds_balance_classes_across_all_folds():
  rng = np.random.default_rng(3)
  groups, y = rng.integers(0, 40, 200), (rng.uniform(size=200) < 0.3).astype(int)
  folds = crossval.group_folds(y, groups, 5, 2, 0)
  assert folds.shape == (2, 200) and folds.dtype == np.int32
  for f in folds:
    for g in np.unique(groups):
      assert len(set(f[groups == g])) == 1  # a group stays in one fold
    counts = np.stack([np.bincount(y[f == k], minlength=2) for k in range(5)])
    # Even shares: a fifth of each class (~30 and ~10 rows); 40 groups of ~5 rows leave a
    # little slack (a greedy that ignores the classes, the emptiest fold first, is 5-7 off).
    np.testing.assert_allclose(counts, np.broadcast_to(np.bincount(y) / 5, counts.shape),
                               atol=2.5)
  # Two big single-class groups and small ones: each fold gets one big group.
  groups = np.repeat(np.arange(8), [6, 6, 3, 3, 2, 2, 1, 1])
  y = np.array([0] * 6 + [1] * 6 + [0] * 3 + [1] * 3 + [0, 0, 1, 1, 0, 1])
  f = crossval.group_folds(y, groups, 2, 1, 0)[0]
  assert [np.bincount(y[f == k], minlength=2).tolist() for k in range(2)] == [[6, 6], [6, 6]]


def test_ridge_grade_shrinks_towards_the_training_mean_without_flipping_the_sign():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(40, 1))
  grade = 4 + x[:, 0]
  folds = np.arange(40)[None] % 4
  r = crossval.ridge_grade(x, grade, folds, lam=100.0)
  assert r['spearman'] > 0.9 and r['mae'] < r['mae_predicting_mean']
  near_ols = crossval.ridge_grade(x, grade, folds, lam=1e-6)
  assert near_ols['mae'] < 1e-3 < r['mae']


def test_incremental_scores_are_the_ridge_scores_of_the_stacked_columns():
  rng = np.random.default_rng(0)
  n = 48
  y = rng.integers(0, 2, n)
  folds = (np.arange(n) % 3)[None]
  base = rng.normal(size=(1, n, 1)) + 0.5 * y[None, :, None]
  extra = rng.normal(size=(1, n, 2)) + y[None, :, None]
  perms = rng.permutation(n)[None]  # 3 stacks (alone, both, 1 null) in chunks of 2: padded
  alone, both, null = crossval.incremental_scores('roc_auc', base, extra, y, folds, 2, 0.1,
                                                  perms, 2)
  ref_alone, _ = crossval.ridge_observed('roc_auc', base[0], y, folds, 2, 0.1)
  ref_both, _ = crossval.ridge_observed('roc_auc', np.concatenate([base, extra], -1)[0], y,
                                        folds, 2, 0.1)
  np.testing.assert_allclose([alone, both], [ref_alone, ref_both], atol=1e-5)
  assert null.shape == (1,) and 0 <= null[0] <= 1


def test_majority_predictions_are_each_training_folds_majority():
  y = np.array([1, 1, 1, 1, 0, 0, 0])
  folds = np.array([[0, 1, 0, 1, 0, 1, 1], [0, 0, 0, 0, 1, 1, 1]])
  # Repeat 0: fold 0's training rows 1, 3, 5, 6 hold 1, 1, 0, 0 (a tie: the lower class),
  # fold 1's rows 0, 2, 4 hold 1, 1, 0. Repeat 1: fold 0 trains on 0s, fold 1 on 1s.
  np.testing.assert_array_equal(crossval.majority_predictions(y, folds, 2),
                                [[0, 1, 0, 1, 0, 1, 1], [0, 0, 0, 0, 1, 1, 1]])
