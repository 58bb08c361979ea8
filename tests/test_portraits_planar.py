"""portraits.draw works on planar [3, H, W] images for speed: the bytes must be those the
interleaved [H, W, 3] drawing gave (commit d604e55), bit for bit."""
import hashlib

import numpy as np

from gradejax.data import portraits

# sha1 of draw(...) at 65x75 px as drawn by the interleaved code of d604e55 (same numpy 2.3.5):
# (sticker, tag, hair style) per case, params from default_rng([5, case]).
CASES = [(False, False, 'short', 'a0ffc656acef6ac7496c55e4d5df547683dc8daf'),
         (True, False, 'long', 'af4ef571d52755b60c6b8b244792dec77cf38575'),
         (False, True, 'curly', '97abb9386152f07337ea6b6cd44bb6f69f341119'),
         (True, True, 'bun', '155f93df6bcd404f60c2a7777ccbcc8112743f82'),
         (False, False, 'bald', '172aeb112e3ab899063fa3ea381973d72e7ef06b')]


def test_planar_drawing_gives_the_interleaved_bytes():
  got = []
  for k, (sticker, tag, style, _) in enumerate(CASES):
    rng = np.random.default_rng([5, k])
    p = dict(portraits.sample_params(rng), hair_style=style)
    st = portraits.sample_sticker(rng) if sticker else None
    tg = portraits.sample_tag(rng) if tag else None
    img, _ = portraits.draw(p, st, size=(65, 75), tag=tg)
    assert img.shape == (75, 65, 3) and img.dtype == np.uint8
    got.append(hashlib.sha1(img.tobytes()).hexdigest())
  assert got == [c[3] for c in CASES]


def test_planar_over_and_shade_are_the_interleaved_arithmetic():
  rng = np.random.default_rng(0)
  img = rng.uniform(size=(7, 5, 3))
  alpha = rng.uniform(-0.2, 1.2, size=(7, 5))  # clipped to [0, 1]
  colour = rng.uniform(size=3)
  a = np.clip(alpha, 0, 1)[..., None]
  planar = portraits._over(img.transpose(2, 0, 1), colour, alpha).transpose(1, 2, 0)
  np.testing.assert_array_equal(planar, img * (1 - a) + colour * a)
  layer = rng.uniform(size=(7, 5, 3))  # a per-pixel colour (planar in, interleaved reference)
  planar = portraits._over(img.transpose(2, 0, 1), layer.transpose(2, 0, 1), alpha)
  np.testing.assert_array_equal(planar.transpose(1, 2, 0), img * (1 - a) + layer * a)
  factor = rng.uniform(0.5, 1.5, size=(7, 5))
  np.testing.assert_array_equal(portraits._shade(img.transpose(2, 0, 1), factor)
                                .transpose(1, 2, 0), img * factor[..., None])
