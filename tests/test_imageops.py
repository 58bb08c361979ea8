"""The one Gaussian blur against scipy.ndimage's, for both edge modes."""
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
