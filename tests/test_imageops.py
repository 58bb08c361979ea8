"""The one Gaussian blur against scipy.ndimage's, for both edge modes; the one uint8 -> [0, 1]
conversion against the formulas it replaced."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from gradejax import imageops


@pytest.mark.parametrize('edge,scipy_mode', [('reflect', 'mirror'), ('edge', 'nearest')])
@pytest.mark.parametrize('sigma', [1.0, 2.0])
def test_gaussian_blur_matches_scipy(edge, scipy_mode, sigma):
  x = np.random.default_rng(0).random((2, 23, 19, 3)).astype(np.float32)
  got = np.asarray(imageops.gaussian_blur(x, sigma, edge=edge))
  want = ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode=scipy_mode, truncate=3.0)
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_zero_sigma_is_identity_and_bad_edge_is_named():
  x = np.ones((1, 4, 4, 3), np.float32)
  np.testing.assert_array_equal(imageops.gaussian_blur(x, 0.0), x)
  with pytest.raises(ValueError, match='edge'):
    imageops.gaussian_blur(x, 1.0, edge='wrap')


def test_to_unit_float_equals_the_old_conversions():
  rng = np.random.default_rng(0)
  u8 = rng.integers(0, 256, (2, 5, 5, 3), dtype=np.uint8)
  got = imageops.to_unit_float(u8)
  assert isinstance(got, np.ndarray) and got.dtype == np.float32
  np.testing.assert_array_equal(got, u8.astype(np.float32) / 255.0)
  np.testing.assert_array_equal(imageops.to_unit_float(u8, np.float64),
                                u8.astype(np.float64) / 255.0)
  j = imageops.to_unit_float(jnp.asarray(u8))
  assert isinstance(j, jax.Array)
  np.testing.assert_array_equal(j, jnp.asarray(u8).astype(jnp.float32) / 255.0)
  f = rng.random((2, 3)).astype(np.float32)  # already in [0, 1]: only cast, never divided
  np.testing.assert_array_equal(imageops.to_unit_float(f), f)
  assert float(imageops.to_unit_float(np.array([255], np.uint8))[0]) == 1.0
