"""The grade -> class rule's edges, by hand: the gaps mutation testing found in
gradejax/data/labels.py (issue 22; benchmarks/mutation.py, RESULTS.md)."""
import numpy as np
import pytest

from gradejax.data import labels


def test_fmt_grade():
  assert [labels.fmt_grade(x) for x in (4, 4.25, 4.125, 4.1254, 10.0)] == [
      '4.0', '4.25', '4.125', '4.125', '10.0']


def test_bins_names_edges_and_errors():
  g = np.arange(1.0, 9.0)  # 8 distinct grades, quartiles 2.75, 4.5, 6.25
  lab = labels.make_labelling(g, bins=4, pivot=None)
  assert lab.num_classes == 4 and lab.rule == 'bins=4'
  assert lab.class_names == ('q0_below_2.75', 'q1_2.75_to_4.5', 'q2_4.5_to_6.25',
                             'q3_at_or_above_6.25')
  assert labels.make_labelling(np.array([1.0, 2.0]), bins=2).thresholds == (1.5,)
  with pytest.raises(ValueError, match='--bins must be >= 2, got 1'):
    labels.make_labelling(g, bins=1)
  with pytest.raises(ValueError, match='no usable rows: cannot compute quantile bins'):
    labels.make_labelling(np.array([]), bins=2)
  # The lowest threshold equal to the lowest grade would leave class 0 empty.
  with pytest.raises(ValueError, match='collapse'):
    labels.make_labelling(np.array([1.0, 1.0, 1.0, 5.0]), bins=2)


def test_pivot_rules_and_errors():
  med = labels.make_labelling(np.array([1.0, 2.0, 9.0]), pivot=' Median ')
  assert (med.thresholds, med.rule, med.num_classes) == ((2.0,), 'pivot=median', 2)
  assert labels.make_labelling(np.array([1.0]), pivot='4.5').rule == 'pivot=4.5'
  with pytest.raises(ValueError, match='no usable rows: cannot compute the median'):
    labels.make_labelling(np.array([]), pivot='median')
  with pytest.raises(ValueError, match='--pivot must be a number'):
    labels.make_labelling(np.array([1.0]), pivot=None)


def test_stratified_folds_deal_round_robin_across_classes():
  f = labels.stratified_folds(np.array([0, 0, 0, 1, 1, 1]), 2, seed=0)
  assert sorted(f[:3].tolist()) == [0, 0, 1] and sorted(f[3:].tolist()) == [0, 1, 1]
  assert f.dtype == np.int32 and np.bincount(f).tolist() == [3, 3]
  with pytest.raises(ValueError, match='--folds must be >= 2, got 1'):
    labels.stratified_folds(np.array([0, 1]), 1, seed=0)
  assert sorted(labels.stratified_folds(np.array([0, 1]), 2, seed=0).tolist()) == [0, 1]


def test_stratified_folds_balance_each_of_three_classes():
  y = np.array([0] * 6 + [1] * 4 + [2] * 5)
  f = labels.stratified_folds(y, 3, seed=0)
  for c in range(3):
    counts = np.bincount(f[y == c], minlength=3)
    assert counts.max() - counts.min() <= 1, (c, counts)
  assert np.bincount(f, minlength=3).tolist() == [5, 5, 5]
