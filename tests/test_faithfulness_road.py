"""ROAD's removal (issue 22: with the ``where`` arguments swapped the removed pixels kept
their values and the test's ``!=`` still passed on float noise): real values on a net that
reads one patch of an image whose background is known."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gradejax import nets
from gradejax.attribution import faithfulness

H = W = 12
PATCH = (slice(4, 8), slice(4, 8))


class PatchSum(nn.Module):
  """outputs[b] = (sum of channel 0 over PATCH) * [1, -1]."""

  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    del relu
    s = jnp.sum(images[:, PATCH[0], PATCH[1], 0], axis=(1, 2))
    return jnp.stack([s, -s], axis=1)


def test_road_removes_and_imputes_the_ranked_pixels():
  fn = nets.bind(PatchSum(), {})
  mask = np.zeros((H, W), np.float32)
  mask[PATCH] = 1.0
  # Image 0: the patch bright (0.9) on a flat background (0.2): the removed patch, imputed from
  # its surroundings (a Laplace fill with the background as boundary), becomes 0.2 everywhere.
  # Image 1: a random background; its patch must equal the imputation of that patch alone.
  rng = np.random.default_rng(0)
  x = np.full((2, H, W, 3), 0.2, np.float32)
  x[0][PATCH] = 0.9
  x[1] = rng.uniform(size=(H, W, 3))
  heat = np.broadcast_to(mask, (2, H, W))
  fr = (16 / (H * W), 0.5)  # first step: exactly the 16 patch pixels
  curves = np.asarray(faithfulness.road(fn, x, 0, heat, jax.random.key(0), fractions=fr,
                                        score='logit', noise=0.0, iterations=5))
  full = x[:, PATCH[0], PATCH[1], 0].sum(axis=(1, 2))
  np.testing.assert_allclose(curves[:, 0], full, rtol=1e-6)
  np.testing.assert_allclose(curves[0, 1], 16 * 0.2, rtol=1e-4)
  removed = jnp.asarray(np.broadcast_to(mask > 0, (2, H, W)))
  imputed = np.asarray(faithfulness.noisy_linear_impute(jnp.asarray(x), removed,
                                                        jax.random.key(0), noise=0.0,
                                                        iterations=5))
  np.testing.assert_allclose(curves[1, 1], imputed[1][PATCH][..., 0].sum(), rtol=1e-5)
  assert abs(curves[1, 1] - full[1]) > 0.1  # the random patch really was replaced
