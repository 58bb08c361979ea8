"""Faithfulness (deletion/insertion) and localisation measures against hand computations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradejax import attribution as attr
from gradejax import nets
from gradejax.attribution import faithfulness, localisation
from toy_nets import LinearNet

TARGETS = np.array([1, 2])


@pytest.fixture(scope='module')
def linear():
  images = jax.random.uniform(jax.random.key(1), (2, 6, 6, 3))
  module = LinearNet()
  variables = module.init(jax.random.key(0), images)
  return nets.bind(module, variables), images, np.asarray(variables['params']['w'])


def test_deletion_and_insertion_on_a_linear_model(linear):
  fn, images, w = linear
  x = np.asarray(images)
  contrib = np.stack([(x[i] * w[..., k]).sum(-1) for i, k in enumerate(TARGETS)])  # [B, H, W]
  out = np.asarray(fn(images)[0])[[0, 1], TARGETS]
  bias = out - contrib.sum(axis=(1, 2))
  steps = 9  # 36 pixels: 4 per step
  dele = np.asarray(faithfulness.curve(fn, images, TARGETS, jnp.asarray(contrib),
                                       mode='deletion', steps=steps, score='logit', chunk=4))
  ins = np.asarray(faithfulness.curve(fn, images, TARGETS, jnp.asarray(contrib),
                                      mode='insertion', baseline=0.0, steps=steps,
                                      score='logit', chunk=4))
  # Deleting (zeroing) a pixel removes exactly its contribution w . x.
  ranked = -np.sort(-contrib.reshape(2, -1), axis=1)
  removed = np.concatenate([np.zeros((2, 1)), np.cumsum(ranked, axis=1)[:, 3::4]], axis=1)
  np.testing.assert_allclose(dele, out[:, None] - removed, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ins, bias[:, None] + removed, rtol=1e-5, atol=1e-5)
  a = np.asarray(faithfulness.auc(jnp.asarray(dele)))
  np.testing.assert_allclose(a, np.trapezoid(dele, dx=1 / steps, axis=1), rtol=1e-6)
  # For a linear model deleting the largest contributions first is optimal: any other order
  # (here a random map) leaves the score at least as high at every step.
  rand = jax.random.normal(jax.random.key(9), contrib.shape)
  other = np.asarray(faithfulness.curve(fn, images, TARGETS, rand, steps=steps, score='logit'))
  assert np.all(other >= dele - 1e-5) and np.all(other[:, 1:-1] > dele[:, 1:-1])


def test_softmax_score_and_blur_baseline(linear):
  fn, images, _ = linear
  heat = attr.to_heatmap(attr.gradient_x_input(fn, images, TARGETS))
  ins = np.asarray(faithfulness.curve(fn, images, TARGETS, heat, mode='insertion', steps=4))
  probs = np.asarray(jax.nn.softmax(fn(images)[0]))[[0, 1], TARGETS]
  blurred = faithfulness.blur(images)
  np.testing.assert_allclose(ins[:, -1], probs, rtol=1e-5)
  np.testing.assert_allclose(
      ins[:, 0], np.asarray(jax.nn.softmax(fn(blurred)[0]))[[0, 1], TARGETS], rtol=1e-5)
  # The blur (edge-replicated, normalised kernel) keeps a constant image constant.
  np.testing.assert_allclose(faithfulness.blur(jnp.full((1, 6, 6, 3), 0.3)), 0.3, rtol=1e-6)


def test_localisation_measures():
  masks = np.zeros((3, 10, 10), bool)
  masks[:, 2:5, 2:5] = True
  maps = np.zeros((3, 10, 10))
  maps[0, 3, 3] = 2.0   # all mass inside, max inside
  maps[0, 8, 8] = -5.0  # negative mass is ignored
  maps[1, 3, 3], maps[1, 7, 3] = 1.0, 3.0  # 1/4 inside, max 3 px below the mask
  maps[2] = 1.0  # uniform: mass fraction = area fraction, max at (0, 0)
  np.testing.assert_allclose(localisation.mass_inside(maps, masks), [1.0, 0.25, 0.09])
  # (7, 3) is 3 px from (4, 3); (0, 0) is sqrt(8) = 2.83 px from (2, 2).
  np.testing.assert_array_equal(localisation.pointing_game(maps, masks, tolerance=0),
                                [True, False, False])
  np.testing.assert_array_equal(localisation.pointing_game(maps, masks, tolerance=2.9),
                                [True, False, True])
  np.testing.assert_array_equal(localisation.pointing_game(maps, masks, tolerance=3),
                                [True, True, True])
  assert np.isnan(localisation.mass_inside(np.zeros((1, 10, 10)), masks[:1]))[0]
