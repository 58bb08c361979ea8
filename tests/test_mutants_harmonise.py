"""The face ellipse and the sharpness match on float chips, by hand: the gaps mutation testing
found in gradejax/evaluation/harmonise.py (issue 22; benchmarks/mutation.py, RESULTS.md)."""
import numpy as np

from gradejax.evaluation import harmonise


def test_face_mask_is_the_ellipse_around_the_face_centre():
  m = harmonise.face_mask(150)
  assert m.shape == (150, 150) and m.dtype == bool
  assert m[75, 75] and not m[0, 0] and not m[149, 149] and not m[0, 149]
  assert 0.2 < m.mean() < 0.7  # a face-sized ellipse, not its complement


def test_resolution_brings_every_chip_to_the_lowest_sharpness():
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(4, 24, 24, 3)).astype(np.float32)
  x[2:] = 0.5 + 0.3 * (x[2:] - 0.5)  # two chips with less contrast: less sharp
  out = harmonise.resolution(x, None)
  s = np.asarray(harmonise.sharpness(out))
  np.testing.assert_allclose(s, np.asarray(harmonise.sharpness(x)).min(), rtol=1e-3)
