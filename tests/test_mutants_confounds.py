"""The group association's statistic, the gain's CI floor and the facial aspects' comparison,
by hand: the gaps mutation testing found in gradejax/evaluation/confounds.py (issue 22;
benchmarks/mutation.py, RESULTS.md)."""
import numpy as np
import pytest

from gradejax.evaluation import confounds


def test_group_association_chi_square_by_hand():
  # Groups a, b x classes 0, 1: [[3, 1], [1, 3]]; every expected count is 2, so
  # chi2 = 4 * (1 ** 2 / 2) = 2.
  groups = np.array(['a'] * 4 + ['b'] * 4)
  y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
  r = confounds.group_association(y, groups, 50, 0)
  assert r['chi2'] == pytest.approx(2.0) and r['num_groups'] == 2
  assert r['share_of_top_class_by_group'] == {'a': 0.25, 'b': 0.75}
  assert 1 / 51 <= r['p_value'] <= 1
  # Each group holding one class: [[2, 0], [0, 2]], expected 1 everywhere, chi2 = 4.
  r = confounds.group_association(np.array([0, 0, 1, 1]), np.array(['a', 'a', 'b', 'b']), 5, 0)
  assert r['chi2'] == pytest.approx(4.0)


def test_adds_needs_the_gain_ci_strictly_above_zero():
  incr = {'p_value': 0.01, 'gain': 0.05, 'gain_ci95': [0.0, 0.1]}
  assert not confounds.adds(incr, 0.05, 0.02)
  assert confounds.adds(dict(incr, gain_ci95=[0.001, 0.1]), 0.05, 0.02)
  assert not confounds.adds(None, 0.05, 0.02)


def test_aspect_compares_each_facial_baseline_with_the_other():
  rng = np.random.default_rng(0)
  n = 40
  y = rng.integers(0, 2, n)
  folds = (np.arange(n) % 4)[None]

  def oof(strength):
    p1 = 1 / (1 + np.exp(-(strength * (2 * y - 1) + rng.normal(size=n))))
    return np.stack([1 - p1, p1], -1)[None].astype(np.float32)

  base = {'p_holm': 0.001, 'ci95': [0.7, 0.9]}
  baselines = {'blurred_photo': dict(base, oof=oof(2.0)),
               'face_geometry': dict(base, oof=oof(2.0))}
  out = confounds.aspect('roc_auc', baselines, oof(0.0), y, folds, np.zeros((0, n), int), 2,
                         1.0, 2, 0.5, 0.05, 0.02)
  assert out['beats'] == ['blurred_photo', 'face_geometry']
  assert out['between']['blurred_photo']['against'] == ['face_geometry']
  assert out['between']['face_geometry']['against'] == ['blurred_photo']
  # No permutations: no p below alpha, so neither adds to the other: both aspects named.
  assert out['aspect'] == 'coarse appearance and geometry'


def test_blurred_photo_reads_uint8_and_unit_chips_alike():
  rng = np.random.default_rng(0)
  chips = rng.integers(0, 256, (2, 60, 60, 3)).astype(np.uint8)
  a = confounds.blurred_photo(chips, grid=2)
  np.testing.assert_allclose(a, confounds.blurred_photo(chips / 255.0, grid=2), atol=1e-6)
  assert a.shape == (2, 12) and 0.3 < a.mean() < 0.7  # in [0, 1] units
