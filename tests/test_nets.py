"""The calling convention (gradejax/nets/convention.py) on a toy net with known answers."""
import flax.linen as nn
import jax
import numpy as np

from gradejax import nets


class Toy(nn.Module):
  @nn.compact
  def __call__(self, x, *, relu=nn.relu):
    h = nets.tap(self, 'zconv', relu(nn.Conv(4, (3, 3))(x)))  # 'z...' sorts last, runs first
    h = nets.tap(self, 'apool', h.mean((1, 2)))
    return nn.Dense(2)(h)


def _setup():
  m = Toy()
  x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 3))
  return m, x, m.init(jax.random.key(0), x)


def test_perturbation_gradient_is_the_dense_weight():
  m, x, v = _setup()
  fn = nets.bind(m, v)
  z = nets.zero_perturbations_like(m, v, x)
  g = jax.grad(lambda p: fn(x, perturbations=p)[0][:, 1].sum())({'apool': z['apool']})
  np.testing.assert_allclose(g['apool'], np.broadcast_to(v['params']['Dense_0']['kernel'][:, 1],
                                                         (2, 4)), rtol=1e-6)


def test_bound_is_a_pytree_argument_one_trace_for_two_param_sets():
  m, x, v = _setup()
  v2 = m.init(jax.random.key(7), x)
  traces = []

  @jax.jit
  def run(fn, x):
    traces.append(1)
    return fn(x)[0]

  a, b = run(nets.bind(m, v), x), run(nets.bind(m, v2), x)
  assert len(traces) == 1
  np.testing.assert_allclose(a, m.apply(v, x), rtol=1e-6)
  np.testing.assert_allclose(b, m.apply(v2, x), rtol=1e-6)
  assert not np.allclose(a, b)


def test_tap_order_is_forward_order_not_sorted():
  m, x, v = _setup()
  fn = nets.bind(m, v)
  assert nets.tap_order(fn, x) == ['zconv', 'apool']
  assert nets.activation_shapes(fn, x) == {'zconv': (2, 8, 8, 4), 'apool': (2, 4)}


def test_jit_model_fn_traces_bound_params_and_keeps_other_callables_static():
  m, x, v = _setup()
  traces = []

  def f(fn, x, scale):
    traces.append(1)
    return fn(x)[0] * scale

  run = nets.jit_model_fn(f, ('scale',))
  a = run(nets.bind(m, v), x, scale=2.0)
  b = run(nets.bind(m, m.init(jax.random.key(7), x)), x, scale=2.0)
  assert len(traces) == 1  # new params of the same shapes: no retrace
  np.testing.assert_allclose(a, 2 * m.apply(v, x), rtol=1e-6)
  assert not np.allclose(a, b)
  plain = lambda x, **kw: (m.apply(v, x), {})  # a plain callable: static (hashed), still works
  np.testing.assert_allclose(run(plain, x, scale=1.0), m.apply(v, x), rtol=1e-6)
  assert len(traces) == 2


def test_norm_stats_over_masked_rows_with_a_floored_std():
  from gradejax.nets import classifier
  x = np.array([[1.0, 5.0], [3.0, 5.0], [100.0, -7.0]], np.float32)
  s = classifier.norm_stats(x, np.array([True, True, False]))
  np.testing.assert_allclose(s['mean'], [2.0, 5.0])
  np.testing.assert_allclose(s['std'], [1.0, 1e-6])  # the constant column: floored, not 0
  np.testing.assert_allclose(classifier.norm_stats(x)['std'], x.std(0), rtol=1e-6)
