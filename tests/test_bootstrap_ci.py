"""The bootstrap interval survives resamples without the small class (found by a property test)."""
import numpy as np

from gradejax.evaluation import crossval


def test_small_class_resamples_do_not_make_the_interval_nan():
  # 4 positives of 30: about 1.6% of resamples hold none, and their ROC-AUC is NaN.
  rng = np.random.default_rng(0)
  y = np.array([1] * 4 + [0] * 26)
  oof = np.stack([1 - (p := np.clip(0.3 * y + rng.uniform(0, 0.7, 30), 0, 1)), p], -1)[None]
  boot = crossval.fast_bootstrap('roc_auc', y, oof, 2, 1000, 0)
  assert np.isnan(boot).sum() > 0  # the case exists with this draw
  lo, hi = crossval.bootstrap_ci(boot)
  ok = boot[np.isfinite(boot)]
  assert np.allclose([lo, hi], np.percentile(ok, [2.5, 97.5]))
  assert 0.0 < lo < hi <= 1.0


def test_interval_levels_and_all_nan():
  draws = np.arange(1001, dtype=float)
  assert np.allclose(crossval.bootstrap_ci(draws), [25.0, 975.0])
  assert np.allclose(crossval.bootstrap_ci(draws, level=0.9), [50.0, 950.0])
  assert all(np.isnan(crossval.bootstrap_ci(np.full(5, np.nan))))
