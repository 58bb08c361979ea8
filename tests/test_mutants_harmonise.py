"""The face ellipse and the sharpness match on float chips, by hand: the gaps mutation testing
found in gradejax/evaluation/harmonise.py (issue 22; benchmarks/mutation.py, RESULTS.md)."""
import numpy as np

from gradejax.evaluation import harmonise


def test_face_mask_is_the_ellipse_around_the_face_centre():
  m = harmonise.face_mask(150)
  assert m.shape == (150, 150) and m.dtype == bool
  assert m[75, 75] and not m[0, 0] and not m[149, 149] and not m[0, 149]
  assert 0.2 < m.mean() < 0.7  # a face-sized ellipse, not its complement


def test_resolution_brings_every_chip_to_the_lowest_relative_sharpness():
  # Sharpness is matched relative to each chip's own contrast (a low-contrast chip is not
  # 'blurrier'): two chips are blurred first, so they set the lowest relative sharpness.
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(4, 24, 24, 3)).astype(np.float32)
  x[2:] = 0.5 + 0.3 * (x[2:] - 0.5)  # less contrast: must not count as less sharp
  x[1] = np.asarray(harmonise._blur(x[1:2], sigma=1.0, edge='edge'))[0]
  mask = harmonise.face_mask(24)
  var = harmonise.contrast(x, mask)
  before = np.asarray(harmonise.relative_sharpness(x, mask, var))
  assert before.argmin() == 1  # the blurred chip, not the low-contrast ones
  out = harmonise.resolution(x, None, mask=mask)
  after = np.asarray(harmonise.relative_sharpness(out, mask, var))
  np.testing.assert_allclose(after, before.min(), rtol=2e-2)


def test_retest_alone_and_all_together():
  # A brightness cue over the whole chip, features = mean colour: the colour harmonisation
  # (each chip's face-ellipse mean and sd mapped to the pooled ones, over the whole chip)
  # removes it; the background one leaves the face's.
  rng = np.random.default_rng(0)
  n = 24
  y = (np.arange(n) % 2).astype(np.int32)
  chips = np.clip(rng.normal(100 + 60 * y[:, None, None, None], 20, (n, 32, 32, 3)), 0,
                  255).astype(np.uint8)
  feat = lambda c: np.asarray(c, np.float32).reshape(len(c), -1, 3).mean(1) / 255
  folds = (np.arange(n) % 3)[None]
  perms = np.stack([rng.permutation(n) for _ in range(30)])
  out = harmonise.retest('roc_auc', feat, chips, feat(chips), y, folds, perms, 2, 1.0, 50, 0,
                         10, 0.05, 0.5, {'jpeg_quality': 90, 'side': None},
                         kinds=('colour', 'background'))
  assert out['reference']['beats_chance']
  assert not out['colour']['beats_chance'] and out['background']['beats_chance']
  assert not out['all']['beats_chance'] and not out['survives']
  assert out['removed_by'] == ['colour']
  assert out['images_all'].shape == chips.shape
