"""Augmentation against scipy.ndimage's affine resample and hand-derived colour maths."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
from scipy import ndimage

from gradejax.training import augment


@pytest.fixture(scope='module')
def image():
  return jnp.asarray(skimage.transform.resize(skimage.data.astronaut()[:256, 100:356], (40, 40)),
                     jnp.float32)


def test_identity_and_flip(image):
  same = augment.affine_resample(image, 0.0, 1.0, jnp.zeros(2), False)
  np.testing.assert_allclose(same, image, atol=1e-6)
  flipped = augment.affine_resample(image, 0.0, 1.0, jnp.zeros(2), True)
  np.testing.assert_allclose(flipped, image[:, ::-1], atol=1e-5)


def test_rotation_scale_shift_match_scipy(image):
  angle, scale, shift = 0.2, 1.1, np.array([1.5, -2.0])
  got = augment.affine_resample(image, angle, scale, jnp.asarray(shift), False)
  c, s = np.cos(angle), np.sin(angle)
  m = np.array([[c, -s], [s, c]]) / scale  # output (y, x) -> input (y, x), about the centre
  centre = np.array([19.5, 19.5])
  offset = centre - m @ (centre + shift)
  for k in range(3):
    want = ndimage.affine_transform(np.asarray(image[..., k]), m, offset, order=1, mode='nearest')
    np.testing.assert_allclose(got[..., k], want, atol=1e-4)


def test_colour_jitter_by_hand():
  x = jnp.array([[[0.2, 0.4, 0.6]]])
  np.testing.assert_allclose(augment.colour_jitter(x, 0.1, 1.0, 1.0), x + 0.1, atol=1e-6)
  # Saturation 0 -> grey, contrast 0 -> the image mean everywhere.
  np.testing.assert_allclose(augment.colour_jitter(x, 0.0, 1.0, 0.0), jnp.full_like(x, 0.4),
                             atol=1e-6)
  np.testing.assert_allclose(augment.colour_jitter(x, 0.0, 0.0, 1.0), jnp.full_like(x, 0.4),
                             atol=1e-6)
  assert float(augment.colour_jitter(x, 0.9, 1.0, 1.0).max()) == 1.0


def test_batch_views_shapes_range_and_keys(image):
  p = augment.AugmentParams()
  batch = jnp.stack([image] * 4)
  out = jax.jit(augment.augment_batch, static_argnums=2)(jax.random.key(0), batch, p)
  assert out.shape == batch.shape and out.dtype == jnp.float32
  assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
  assert not np.allclose(out[0], out[1])  # independent draws per image
  views = augment.views(jax.random.key(3), batch, jnp.array([0, 1, 1, 2]),
                        jnp.array([5, 5, 5, 5]), p)
  np.testing.assert_array_equal(views[0], image)  # view 0 is the image itself
  np.testing.assert_array_equal(views[1], views[2])  # same (view, example) -> same pixels
  assert not np.allclose(views[2], views[3])
  # Same view of two examples holding the same pixels: the key depends on the example too.
  other = augment.views(jax.random.key(3), batch[:2], jnp.array([1, 1]), jnp.array([5, 6]), p)
  assert not np.allclose(other[0], other[1])


def test_jitter_draws_are_two_sided_and_independent():
  # Colour jitter alone (no geometry, saturation off) on pixels in [0.35, 0.65], so nothing
  # clips: the brightness draw b is the shift of the mean, the contrast factor c the ratio of
  # standard deviations. Over 64 keys each takes both signs of its range, and the two are
  # separate draws (the same draw would make b == c - 1 exactly).
  x = jnp.asarray(np.random.default_rng(0).uniform(0.35, 0.65, (6, 6, 3)), jnp.float32)
  p = augment.AugmentParams(flip=False, max_rotation_deg=0.0, max_scale=0.0,
                            max_translation=0.0, brightness=0.1, contrast=0.1, saturation=0.0)
  keys = jax.random.split(jax.random.key(0), 64)
  out = np.asarray(jax.vmap(lambda k: augment.augment(k, x, p))(keys), np.float64)
  b = out.mean((1, 2, 3)) - float(x.mean())
  c = out.std((1, 2, 3)) / float(x.std())
  for d in (b, c - 1):
    assert d.min() < -0.05 and d.max() > 0.05 and np.abs(d).max() <= 0.1 + 1e-5
  assert abs(np.corrcoef(b, c - 1)[0, 1]) < 0.5
