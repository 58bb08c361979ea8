"""CAM on a coarse feature map, the head check's messages, ranks, chunking, removal drops and
multiscale strides, against hand-derived answers: the gaps mutation testing found in
gradejax/attribution/{class_activation,localisation,gradients,faithfulness,
occlusion_sensitivity}.py (issue 22; benchmarks/mutation.py, RESULTS.md)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradejax import nets
from gradejax.attribution import class_activation, faithfulness, gradients, localisation
from gradejax.attribution import occlusion_sensitivity as occ
import toy_nets

H = W = 8


class StridedNet(nn.Module):
  """conv 3x3 stride 2 -> relu (tap 'features', 4 x 4) -> mean (tap 'pooled') -> dense."""

  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    x = nets.tap(self, 'features', relu(nn.Conv(3, (3, 3), strides=2)(images)))
    x = nets.tap(self, 'pooled', jnp.mean(x, axis=(1, 2)))
    return nets.tap(self, 'logits', nn.Dense(2)(x))


@pytest.fixture(scope='module')
def images():
  return jax.random.uniform(jax.random.key(0), (2, H, W, 3))


def test_cam_and_grad_cam_upsample_a_coarse_map_by_default(images):
  fn, _ = toy_nets.bind(StridedNet(), images.shape)
  t = np.array([0, 1])
  wts = class_activation.linear_head_weights(fn, images, 'pooled', key=jax.random.key(1))
  coarse = class_activation.cam(fn, images, t, wts, layer='features', upsampled=False)
  assert coarse.shape == (2, 4, 4)
  full = class_activation.cam(fn, images, t, wts, layer='features')
  np.testing.assert_allclose(full, class_activation.upsample(coarse, (H, W)), atol=1e-6)
  assert class_activation.grad_cam(fn, images, t, layer='features').shape == (2, H, W)
  with pytest.raises(ValueError, match="'nope' is absent"):
    class_activation.linear_head_weights(fn, images, 'nope', key=jax.random.key(1))
  with pytest.raises(ValueError, match='pooled-feature tap'):
    class_activation.linear_head_weights(fn, images, 'features', key=jax.random.key(1))


def test_relevance_rank_takes_the_most_attributed_pixels():
  heat = np.arange(16.0).reshape(1, 4, 4)
  mask = np.zeros((1, 4, 4), bool)
  mask[0, 3, 2:] = True  # the two largest values, 14 and 15
  np.testing.assert_allclose(localisation.relevance_rank_accuracy(heat, mask), [1.0])
  np.testing.assert_allclose(localisation.relevance_rank_accuracy(-heat, mask), [0.0])


def test_chunks_need_one_step_and_a_chunk_of_one_works():
  assert gradients._chunks(5, 1) == (1, 5)
  assert gradients._chunks(5, 2) == (2, 3)
  for n, chunk in ((0, 4), (4, 0)):
    with pytest.raises(ValueError, match='chunk >= 1'):
      gradients._chunks(n, chunk)


def test_removal_drop_of_several_masks_on_a_linear_model(images):
  fn, variables = toy_nets.bind(toy_nets.LinearNet(), images.shape)
  w = np.asarray(variables['params']['w'])  # [H, W, C, K]
  t = np.array([2, 0])
  removed = np.zeros((3, 2, H, W), np.float32)
  removed[0, :, :2] = 1
  removed[1, 0, 5, 5] = 1
  removed[2, 1, :, 4:] = 1
  got = faithfulness.removal_drop(fn, images, t, jnp.asarray(removed), fill=0.25,
                                  fill_mode='value', chunk=2)
  x = np.asarray(images)
  # Filling pixels with 0.25 changes the logit by sum over them of (0.25 - x) w.
  want = np.array([[np.sum(removed[r, b][..., None] * (x[b] - 0.25) * w[..., t[b]])
                    for b in range(2)] for r in range(3)])
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_multiscale_strides_default_to_half_the_patch_rounded_up(images):
  fn, _ = toy_nets.bind(toy_nets.LinearNet(), images.shape)
  t = np.array([0, 1])
  got = occ.occlusion_multiscale(fn, images, t, patches=(3, 5), fill=0.5)
  want = occ.occlusion_multiscale(fn, images, t, patches=(3, 5), strides=(2, 3), fill=0.5)
  np.testing.assert_allclose(got, want, atol=1e-6)
  assert not np.allclose(got, occ.occlusion_multiscale(fn, images, t, patches=(3, 5),
                                                       strides=(1, 1), fill=0.5), atol=1e-4)


def test_road_breaks_ties_in_row_major_order():
  # Half of a tied 4 x 4 patch removed: the first 8 of its pixels in row-major order, the same
  # as a map whose ties are broken by a tiny decreasing ramp (an unstable sort picks others).
  class PatchSum(nn.Module):
    @nn.compact
    def __call__(self, images, *, relu=nn.relu):
      s = jnp.sum(images[:, 2:6, 2:6, 0], axis=(1, 2))
      return jnp.stack([s, -s], axis=1)

  fn = nets.bind(PatchSum(), {})
  x = jax.random.uniform(jax.random.key(3), (1, H, W, 3))
  heat = np.zeros((1, H, W), np.float32)
  heat[0, 2:6, 2:6] = 1.0
  ramp = heat - 1e-4 * np.arange(H * W, dtype=np.float32).reshape(1, H, W)
  kw = dict(fractions=(8 / (H * W),), score='logit', noise=0.0, iterations=5)
  tied = faithfulness.road(fn, x, 0, heat, jax.random.key(0), **kw)
  broken = faithfulness.road(fn, x, 0, ramp, jax.random.key(0), **kw)
  np.testing.assert_allclose(tied, broken, atol=1e-6)
