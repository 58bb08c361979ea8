"""Sanity checks (Adebayo et al. 2018) on toy nets: the randomisations change what they should,
a model-blind "explanation" is flagged and a gradient is not."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats

from gradejax import attribution as attr
from gradejax import nets
from gradejax.attribution import sanity
from toy_nets import LinearNet, ReluConvNet

TARGETS = np.array([0, 1, 2, 0])


def _images(n=4, size=12, seed=1):
  return jax.random.uniform(jax.random.key(seed), (n, size, size, 3))


def _saliency_map(fn, images, targets):
  return attr.to_heatmap(attr.saliency(fn, images, targets), 'abs_max')


def test_similarity_of_identical_and_unrelated_maps():
  a = np.asarray(jax.random.normal(jax.random.key(0), (3, 12, 12)))
  same = sanity.similarity(a, a)
  assert same == {'spearman': 1.0, 'spearman_abs': 1.0, 'ssim': 1.0}
  b = np.asarray(jax.random.normal(jax.random.key(1), (3, 12, 12)))
  other = sanity.similarity(a, b)
  assert abs(other['spearman']) < 0.3 and other['ssim'] < 0.3
  # Spearman is rank-based: a monotone transform of the map does not change it.
  assert sanity.similarity(a, np.exp(a))['spearman'] == 1.0


def test_cascade_replaces_top_first_and_cumulatively():
  images = _images()
  module = ReluConvNet()
  params = module.init(jax.random.key(0), images)['params']
  rand = module.init(jax.random.key(1), images)['params']
  order = sanity.default_order(params)
  assert order == ['Dense_0', 'Conv_1', 'Conv_0']
  stages = list(sanity.cascade_params(params, rand, order))
  for i, (name, p) in enumerate(stages):
    assert name == order[i]
    for j, layer in enumerate(order):
      source = rand if j <= i else params
      np.testing.assert_array_equal(p[layer]['kernel'], source[layer]['kernel'])


def test_saliency_passes_and_a_model_blind_map_is_flagged():
  images = _images()
  module = ReluConvNet()
  params = module.init(jax.random.key(0), images)['params']
  rand = module.init(jax.random.key(1), images)['params']
  bind = lambda p: nets.bind(module, {'params': p})
  rows = sanity.cascading_randomization(bind, params, rand, images, TARGETS, _saliency_map)
  assert [r['randomized'] for r in rows] == ['Dense_0', 'Conv_1', 'Conv_0']
  assert rows[-1]['spearman_abs'] < 0.9 and not sanity.flagged(rows)
  # An "explanation" that is the image's brightness never looks at the model: flagged.
  blind = lambda fn, x, t: jnp.mean(x, axis=-1)
  rows = sanity.cascading_randomization(bind, params, rand, images, TARGETS, blind)
  assert rows[-1] == {'randomized': 'Conv_0', 'spearman': 1.0, 'spearman_abs': 1.0, 'ssim': 1.0}
  assert sanity.flagged(rows)


def _train_linear(images, labels, key, steps=60):
  module = LinearNet()
  params = module.init(key, images)['params']
  opt = optax.adam(0.05)

  def loss(p):
    out = module.apply({'params': p}, images)
    return optax.softmax_cross_entropy_with_integer_labels(out, labels).mean()

  @jax.jit
  def step(carry, _):
    p, s = carry
    g = jax.grad(loss)(p)
    u, s = opt.update(g, s, p)
    return (optax.apply_updates(p, u), s), None

  (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
  return module, params


def test_label_randomization_on_a_linear_model():
  # Labels = which colour channel is brightest on the image's left half, so a trained linear
  # model has structured weights; the retrained one sees the same images with shuffled labels.
  images = _images(n=48, size=8, seed=2)
  labels = jnp.argmax(images[:, :, :4].mean(axis=(1, 2)), axis=-1)
  module, params = _train_linear(images, labels, jax.random.key(3))
  shuffled = jax.random.permutation(jax.random.key(4), labels)
  retrain = lambda: _train_linear(images, shuffled, jax.random.key(3))[1]
  bind = lambda p: nets.bind(module, {'params': p})
  x, t = images[:4], TARGETS
  result = sanity.label_randomization(bind, params, retrain, x, t, _saliency_map)
  # The linear model's saliency is |w| max over channels: compare the two weight maps directly.
  w0, w1 = np.asarray(params['w']), np.asarray(retrain()['w'])
  rho = np.mean([scipy.stats.spearmanr(np.abs(w0[..., k]).max(-1).ravel(),
                                       np.abs(w1[..., k]).max(-1).ravel())[0] for k in t])
  np.testing.assert_allclose(result['spearman_abs'], rho, rtol=1e-6)
  assert result['spearman_abs'] < 0.9


def test_flag_uses_the_rank_of_the_absolute_map():
  # The map of -f: every sign flips, every magnitude stays. Signed rank -1, |map| rank 1: the
  # method would show the same picture whatever the sign, so it is flagged.
  a = np.random.default_rng(0).normal(size=(2, 8, 8))
  s = sanity.similarity(a, -a)
  assert s['spearman'] == pytest.approx(-1) and s['spearman_abs'] == pytest.approx(1)
  assert sanity.flagged([s])
  # A shift by +3: the signed ranks are unchanged (rho 1), the |map| ranks are not (|a| is
  # V-shaped in a, |a + 3| monotone): not flagged.
  s = sanity.similarity(a, a + 3)
  assert s['spearman'] == pytest.approx(1) and s['spearman_abs'] < 0.5
  assert not sanity.flagged(s)
