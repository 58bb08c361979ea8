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


def _brightness_world(rng, n=24, size=32):
  y = (np.arange(n) % 2).astype(np.int32)
  chips = np.clip(rng.normal(100 + 60 * y[:, None, None, None], 20, (n, size, size, 3)), 0,
                  255).astype(np.uint8)
  feat = lambda c: np.asarray(c, np.float32).reshape(len(c), -1, 3).mean(1) / 255
  return y, chips, feat


def test_retest_beats_chance_needs_both_the_p_value_and_the_ci():
  # One label shuffle: p >= 1/2 whatever the score, so nothing beats chance at alpha 0.05,
  # although the reference's bootstrap CI is far above 0.5 (an 'or' would call it beaten).
  rng = np.random.default_rng(1)
  y, chips, feat = _brightness_world(rng)
  folds = (np.arange(len(y)) % 3)[None]
  perms = np.stack([rng.permutation(len(y))])
  out = harmonise.retest('roc_auc', feat, chips, feat(chips), y, folds, perms, 2, 1.0, 50, 0,
                         10, 0.05, 0.5, {'jpeg_quality': 90, 'side': None},
                         kinds=('background',))
  ref = out['reference']
  assert ref['ci95'][0] > 0.9 and ref['p_value'] >= 0.5
  assert not ref['beats_chance'] and not out['background']['beats_chance']


def test_retest_keeps_the_fully_harmonised_chips():
  rng = np.random.default_rng(2)
  y, chips, feat = _brightness_world(rng)
  folds = (np.arange(len(y)) % 3)[None]
  perms = np.stack([rng.permutation(len(y)) for _ in range(5)])
  kinds = ('colour', 'background')
  out = harmonise.retest('roc_auc', feat, chips, feat(chips), y, folds, perms, 2, 1.0, 20, 0,
                         10, 0.05, 0.5, {'jpeg_quality': 90, 'side': None}, kinds=kinds)
  want = harmonise.harmonise(chips, kinds, side=None, quality=90,
                             sigma=out['settings']['lowpass_sigma'])
  np.testing.assert_array_equal(out['images_all'], want)
  alone = harmonise.harmonise(chips, ('background',), side=None, quality=90,
                              sigma=out['settings']['lowpass_sigma'])
  assert np.abs(alone.astype(int) - want).max() > 0  # not the last single harmonisation


def test_cutoffs_ignore_contrast():
  # The spectrum is normalised by the chip's own low-band power: a chip with a third of the
  # contrast has the same cutoff; a blurred one a lower cutoff.
  rng = np.random.default_rng(3)
  x = rng.uniform(size=(4, 32, 32, 3)).astype(np.float32)
  x[1] = 0.5 + (x[0] - 0.5) / 3
  x[3] = np.asarray(harmonise._blur(x[3:4], sigma=1.5, edge='edge'))[0]
  cut = harmonise.cutoffs(x)
  assert cut[1] == cut[0] == cut[2] > cut[3]


def test_moments_colour_maps_each_chip_to_the_pooled_mean_and_sd():
  rng = np.random.default_rng(4)
  x = (0.5 + 0.05 * rng.normal(size=(4, 16, 16, 3))).astype(np.float32)
  x[:2] = 0.4 + 0.5 * (x[:2] - 0.5)  # darker, less contrast: nothing clips
  mask = harmonise.face_mask(16)
  out = harmonise.colour(x, mask, 'moments')
  px, opx = x[:, mask], out[:, mask]
  np.testing.assert_allclose(opx.mean(1), np.broadcast_to(px.mean((0, 1)), (4, 3)), atol=1e-5)
  np.testing.assert_allclose(opx.std(1), np.broadcast_to(px.reshape(-1, 3).std(0), (4, 3)),
                             rtol=1e-3)


def test_resolution_downsamples_with_antialiasing_down_to_four_pixels():
  # A one-pixel checkerboard has no content below Nyquist: brought down to a third of its
  # side with antialiasing it is nearly flat; plain linear sampling aliases it.
  s = 24
  board = ((np.add.outer(np.arange(s), np.arange(s)) % 2) * 0.8 + 0.1).astype(np.float32)
  x = np.repeat(np.repeat(board[None, :, :, None], 3, axis=3), 2, axis=0)
  out = harmonise.resolution(x, s // 3)
  assert out.std() < 0.05 < x.std()
  # side 4 (the smallest allowed) still resamples; side None leaves the chips as they are.
  assert np.abs(harmonise.resolution(x, 4) - x).max() > 0.1
  np.testing.assert_allclose(harmonise.resolution(x, None), x, atol=1e-6)


def test_retest_scores_the_chips_harmonise_makes_with_the_data_side():
  """The re-test computes the resolution step once for 'resolution' and 'all'; the chips it
  featurises must still be harmonise()'s own for each, at the data's common side."""
  rng = np.random.default_rng(3)
  n = 12
  y = (np.arange(n) % 2).astype(np.int32)
  chips = np.clip(rng.normal(120, 40, (n, 32, 32, 3)), 0, 255).astype(np.uint8)
  seen = []
  feat = lambda c: (seen.append(np.array(c)),
                    np.asarray(c, np.float32).reshape(len(c), -1, 3).mean(1) / 255)[1]
  folds = (np.arange(n) % 3)[None]
  perms = np.stack([rng.permutation(n) for _ in range(5)])
  kinds = ('colour', 'resolution')
  targets = {'jpeg_quality': 90, 'side': 12, 'lowpass_sigma': 0.8}
  harmonise.retest('roc_auc', feat, chips, feat(chips), y, folds, perms, 2, 1.0, 10, 0, 5,
                   0.05, 0.5, targets, kinds=kinds)
  kw = dict(side=12, quality=90, sigma=0.8)
  for got, which in zip(seen[1:], [('colour',), ('resolution',), kinds]):
    np.testing.assert_array_equal(got, harmonise.harmonise(chips, which, **kw), err_msg=which)
  # The side matters here: without it the resolution step gives other chips.
  assert not np.array_equal(harmonise.harmonise(chips, ('resolution',), **kw),
                            harmonise.harmonise(chips, ('resolution',), **dict(kw, side=None)))
