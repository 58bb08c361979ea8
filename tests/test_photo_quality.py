"""photo_quality's sharpness and blockiness against hand-derived answers on tiny synthetic
images (issue 22: a sharpness computed as mean(|lap|)^2 and a blockiness measured at the wrong
block boundary both passed the suite)."""
import numpy as np
import pytest

from gradejax.data import photo_quality


def test_sharpness_is_the_mean_squared_laplacian():
  # One pixel of value a in the middle of a 5x5 black image: over the 3x3 interior the
  # 4-neighbour Laplacian is -4a at the centre, a at its 4 neighbours and 0 at the corners, so
  # mean(lap^2) = (16 + 4) a^2 / 9 (mean(|lap|)^2 would be (8a/9)^2).
  a = 0.5
  g = np.zeros((5, 5))
  g[2, 2] = a
  assert photo_quality.sharpness(g) == pytest.approx(20 * a * a / 9, rel=1e-12)
  # A linear ramp has no Laplacian at all: blur-free but edge-free.
  assert photo_quality.sharpness(np.add.outer(np.arange(6.0), np.arange(6.0)) / 10) == \
      pytest.approx(0.0, abs=1e-15)


def test_blockiness_reads_the_8x8_jpeg_block_boundary():
  # 16x16: a ramp of slope s plus a step b between pixels 7 and 8 (JPEG's block edge) along
  # x and along y. Every step is s except at the boundary (s + b): ratio (s + b) / s per axis.
  s, b = 0.01, 0.05
  i = np.arange(16.0)
  along = s * i + b * (i >= 8)
  both = np.add.outer(along, along)
  assert photo_quality.blockiness(both) == pytest.approx((s + b) / s, rel=1e-9)
  # Only along x (rows constant): the vertical ratio is 0/0 -> 0, the mean of both axes halves.
  assert photo_quality.blockiness(np.broadcast_to(along, (16, 16))) == \
      pytest.approx((s + b) / s / 2, rel=1e-9)
  # The same step one pixel off the boundary (between 8 and 9) is not blockiness: ratio s/...
  off = s * i + b * (i >= 9)
  assert photo_quality.blockiness(np.add.outer(off, off)) == pytest.approx(
      s / ((13 * s + (s + b)) / 14), rel=1e-9)
