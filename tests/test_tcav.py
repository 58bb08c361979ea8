"""TCAV (gradejax.attribution.tcav) against analytic answers, and its null's calibration.

A net whose logit is linear in a known direction u at a tap: TCAV with u as the concept scores
1 for the class and 0 for the other, the random concepts ~0.5 on average, the test rejects.
A concept folder that is random images like the random folder: the test's false-positive rate
over many independent worlds is at most alpha (within sampling error).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats

from gradejax import nets
from gradejax.attribution import tcav

D = 48  # the LinearTapNet's tap width (a 4 x 4 x 3 image, flattened)
U = np.random.default_rng(1).normal(size=D).astype(np.float32)
U /= np.linalg.norm(U)


class LinearTapNet(nn.Module):
  """tap 'feat' = the flattened image; logits = [feat . u, -feat . u] (plus a ReLU'd nuisance
  branch that does not reach the logits)."""

  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    f = nets.tap(self, 'feat', images.reshape(images.shape[0], -1))
    s = f @ jnp.asarray(U)
    nets.tap(self, 'nuisance', relu(f))
    return nets.tap(self, 'logits', jnp.stack([s, -s], axis=1))


@pytest.fixture(scope='module')
def tcav_world():
  rng = np.random.default_rng(2)
  rand = rng.normal(size=(330, 4, 4, 3)).astype(np.float32)  # 10 random concepts of 30 + pool
  concept = (rng.normal(size=(30, D)) + 3 * U).reshape(30, 4, 4, 3).astype(np.float32)
  unrelated = rng.normal(size=(30, 4, 4, 3)).astype(np.float32)  # a 'concept' that is random
  examples = rng.normal(size=(40, 4, 4, 3)).astype(np.float32)
  module = LinearTapNet()
  fn = nets.bind(module, module.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3))))
  return fn, rand, concept, unrelated, examples


def test_tcav_of_the_known_direction(tcav_world):
  fn, rand, concept, unrelated, examples = tcav_world
  found = tcav.run_tcav_classes(fn, {'u': concept, 'unrelated': unrelated}, rand,
                                {0: examples, 1: examples}, layer='feat', key=jax.random.key(0),
                                runs=20, batch=16)
  (u, unrel), (down, _) = found[0], found[1]
  assert u.concept == 'u' and u.score == 1.0 and down.score == 0.0
  assert u.accuracy >= 0.9
  # 10 random concepts of 30 images (330 = 10 x 30 + a pool of 30 for the counterexamples);
  # for a linear net every example has the same gradient, so each run scores 0 or 1 and a
  # random concept's mean is the share of its 20 runs whose CAV points along u: strictly
  # between 0 and 1 (the runs disagree), below the concept's 1.
  assert u.null.shape == (10,) and np.all((u.null > 0) & (u.null < 1))
  np.testing.assert_allclose(u.null * 20, np.round(u.null * 20), atol=1e-9)
  np.testing.assert_allclose(found[1][0].null, 1 - u.null)  # the other class: the mirror
  assert u.p < 0.01 and u.p_holm == pytest.approx(min(1.0, 2 * u.p))
  assert u.significant() and down.significant() and not unrel.significant()
  # one class's call equals the multi-class one (the same CAVs, the same draws)
  [u1, _] = tcav.run_tcav(fn, {'u': concept, 'unrelated': unrelated}, rand, examples, 0,
                          layer='feat', key=jax.random.key(0), runs=20, batch=16)
  np.testing.assert_array_equal(u1.null, u.null)
  np.testing.assert_array_equal(u1.scores, u.scores)
  # the gradients at the tap are u itself
  g = tcav.layer_gradients(fn, examples[:3], 0, 'feat', batch=2)
  np.testing.assert_allclose(g, np.broadcast_to(U, (3, D)), atol=1e-6)


def _primal_cav(a, b, l2):
  """The same objective solved in the primal by BFGS: the reference for the kernel Newton."""
  x = np.concatenate([a, b])
  y = np.r_[np.ones(len(a)), np.zeros(len(b))]
  xc = x - x.mean(0)
  xc /= np.sqrt(np.mean(np.sum(xc ** 2, 1)))
  d = x.shape[1]

  def j(theta):
    f = xc @ theta[:d] + theta[d]
    return np.mean(np.logaddexp(0, f) - y * f) + 0.5 * l2 * theta[:d] @ theta[:d]

  w = optimize.minimize(j, np.zeros(d + 1), method='BFGS', options={'gtol': 1e-10}).x[:d]
  return w / np.linalg.norm(w)


def test_train_cav_is_the_regularised_logistic_optimum():
  rng = np.random.default_rng(3)
  a, b = rng.normal(size=(12, 5)) + 0.7, rng.normal(size=(15, 5))
  cav, _ = tcav.train_cav(a, b, l2=0.05)
  np.testing.assert_allclose(cav, _primal_cav(a, b, 0.05), atol=1e-5)


def test_train_cavs_solves_every_pair_of_a_batch():
  rng = np.random.default_rng(4)
  acts = rng.normal(size=(40, 6)) + 5.0  # far from the origin: the centring must hold
  acts[:10] += 0.8
  c_idx = np.array([np.arange(10), np.arange(10, 20), np.arange(5, 15)])
  r_idx = np.array([np.arange(20, 24), np.arange(30, 34), np.arange(36, 40)])
  cavs, acc = tcav.train_cavs(acts, c_idx, r_idx, l2=0.05)
  for i in range(3):
    np.testing.assert_allclose(cavs[i], _primal_cav(acts[c_idx[i]], acts[r_idx[i]], 0.05),
                               atol=1e-5)
  assert acc.shape == (3,) and np.all((acc > 0.5) & (acc <= 1))


def test_design_splits_the_random_folder_disjointly():
  d = tcav.design(330, 30, jax.random.key(0), runs=20)
  assert d.random_concepts.shape == (10, 30) and d.counter_sets.shape == (20, 3)
  blocks = d.random_concepts.ravel()
  assert len(set(blocks)) == 300  # disjoint random concepts
  pool = set(range(330)) - set(blocks)
  for s in d.counter_sets:
    assert len(set(s)) == 3 and set(s) <= pool  # counterexamples never from a random concept
  assert len({tuple(s) for s in d.counter_sets}) == 20
  assert tcav.design(1000, 30, jax.random.key(0)).random_concepts.shape == (20, 30)  # capped
  assert tcav.random_needed(30) == 165
  with pytest.raises(ValueError, match=r'has 100 images; 5 random concepts of 30 .* need 165'):
    tcav.design(100, 30, jax.random.key(0))


def test_concept_p_is_the_t_prediction_interval():
  null = np.array([0.4, 0.5, 0.55, 0.45, 0.6, 0.5])
  t = (0.9 - null.mean()) / (null.std(ddof=1) * np.sqrt(1 + 1 / 6))
  assert tcav.concept_p(0.9, null) == pytest.approx(2 * stats.t.sf(t, 5))
  assert tcav.concept_p(0.1, 1 - null) == pytest.approx(tcav.concept_p(0.9, null))
  assert tcav.concept_p(0.5, np.full(6, 0.5)) == 1.0
  assert tcav.concept_p(1.0, np.full(6, 0.5)) == pytest.approx(2 / 7)  # exchangeability bound


@pytest.mark.parametrize('spread', [0.0, 1.0])
def test_random_concepts_keep_the_false_positive_rate(spread):
  """The concept is random images like the random folder (exchangeable with the random
  concepts); the class gradients agree fully (spread 0: the sign count's worst case, every
  run scores 0 or 1) or vary. Over 200 independent worlds the test rejects at alpha 0.05 in
  at most 0.05 + 2.5 standard errors of them. (The run-level t-test of the concept's runs
  against random runs, the design this replaced, rejected in ~0.5 of them: measured by
  planting it.)"""
  dim, size, worlds = 8, 20, 200
  p = []
  for seed in range(worlds):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=dim)
    g = u + spread * rng.normal(size=(16, dim))
    [t] = tcav.tcav({'c': rng.normal(size=(size, dim))}, rng.normal(size=(210, dim)), g, 0,
                    key=jax.random.key(seed), runs=20)
    p.append(t.p)
  p = np.array(p)
  bound = 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / worlds)
  assert np.mean(p < 0.05) <= bound, np.mean(p < 0.05)
  assert np.mean(p < 0.5) >= 0.35  # and the p-values are not simply all large
