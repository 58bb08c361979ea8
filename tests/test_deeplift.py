"""DeepLIFT's max-pool rule (issue 21): a hand-derived answer on a bare 2x2 pool, summation to
delta through conv-ReLU-maxpool toy nets (non-overlapping 2x2/2 and overlapping 3x3/2 pools as
in dlib's stem, black and random references), and the gradient fallback kept as an option."""
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
import numpy as np
import pytest

from gradejax import nets
from gradejax.attribution import deeplift
from gradejax.nets import facenet


class PoolNet(nn.Module):
  """outputs[b, c] = max over the 2x2 image of channel c (no params, no ReLU). ``inner_jit``:
  the pool as a bare ``lax.reduce_window``, inside a jitted function; ``facenet``: the face
  ResNet's pool (gradejax.nets.facenet.max_pool: a reduce_window with a custom gradient)."""
  inner_jit: bool = False
  facenet: bool = False

  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    del relu
    if self.facenet:
      pool = lambda x: facenet.pool(x, 'max', 2, 2)
    elif self.inner_jit:
      pool = jax.jit(lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1),
                                                 (1, 2, 2, 1), 'VALID'))
    else:
      pool = lambda x: nn.max_pool(x, (2, 2), (2, 2))
    return pool(images).reshape(images.shape[0], -1)


class ConvPoolNet(nn.Module):
  """conv3x3 -> relu -> max pool (window/stride) -> conv3x3 -> relu -> max pool -> dense."""
  window: int = 2
  stride: int = 2

  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    w, s = (self.window,) * 2, (self.stride,) * 2
    x = relu(nn.Conv(6, (3, 3), bias_init=nn.initializers.normal(0.1))(images))
    x = nn.max_pool(x, w, s)
    x = relu(nn.Conv(5, (3, 3), bias_init=nn.initializers.normal(0.1))(x))
    x = nets.tap(self, 'pooled', nn.max_pool(x, w, s))
    return nets.tap(self, 'logits', nn.Dense(3)(x.reshape(x.shape[0], -1)))


TARGETS = np.array([2, 0, 1])


def _bound(module, shape):
  return nets.bind(module, module.init(jax.random.key(0), jnp.zeros(shape)))


@pytest.mark.parametrize('inner_jit,face', [(False, False), (True, False), (False, True)])
def test_max_pool_rule_by_hand(inner_jit, face):
  # Channel 0: x = [[1, 3], [2, 0]], x_ref = [[4, 0], [0, 0]]: y = 3, y_ref = 4, Δy = -1. The
  # reference wins the window (max(y, y_ref) = y_ref), so all of Δy goes to the reference's
  # argmax (0, 0), whose Δx = -3: multiplier 1/3, contribution -1 there and 0 elsewhere. The
  # gradient rule instead puts multiplier 1 on the input's argmax (0, 1): contribution Δx = 3.
  x = np.zeros((1, 2, 2, 3), np.float32)
  ref = np.zeros_like(x)
  x[0, :, :, 0] = [[1, 3], [2, 0]]
  ref[0, :, :, 0] = [[4, 0], [0, 0]]
  fn = _bound(PoolNet(inner_jit, face), x.shape)
  want = np.zeros_like(x)
  want[0, 0, 0, 0] = -1.0
  got = np.asarray(deeplift.deeplift_rescale(fn, x, 0, ref))
  np.testing.assert_allclose(got, want, atol=1e-6)
  grad = np.zeros_like(x)
  grad[0, 0, 1, 0] = 3.0
  np.testing.assert_allclose(deeplift.deeplift_rescale(fn, x, 0, ref, max_pool='gradient'),
                             grad, atol=1e-6)
  # The input wins (x_ref's max 2 < 3): Δy = 1 goes to the input's argmax, whose Δx = 3 - 0.
  ref[0, :, :, 0] = [[2, 0], [0, 1]]
  want[0, 0, 0, 0], want[0, 0, 1, 0] = 0.0, 1.0
  np.testing.assert_allclose(deeplift.deeplift_rescale(fn, x, 0, ref), want, atol=1e-6)
  # Differences, not values: the same shifted below zero (a pool that reads no ReLU).
  np.testing.assert_allclose(deeplift.deeplift_rescale(fn, x - 5, 0, ref - 5), want, atol=1e-5)


@pytest.mark.parametrize('window,stride', [(2, 2), (3, 2)])
def test_summation_to_delta_through_max_pooling(window, stride):
  shape = (3, 8, 8, 3)
  fn = _bound(ConvPoolNet(window, stride), shape)
  images = jax.random.uniform(jax.random.key(1), shape)
  out = np.asarray(fn(images)[0], np.float64)
  rows = np.arange(shape[0])
  # Black as an explicit array (not None) shares one compile with the random reference.
  for reference in (jnp.zeros(shape), jax.random.uniform(jax.random.key(2), shape)):
    ref_out = np.asarray(fn(reference)[0])
    delta = out[rows, TARGETS] - ref_out[rows, TARGETS]
    dl = np.asarray(deeplift.deeplift_rescale(fn, images, TARGETS, reference), np.float64)
    np.testing.assert_allclose(dl.sum(axis=(1, 2, 3)), delta, rtol=0, atol=1e-5)
    # The gradient fallback is still there, and is what the rule fixes: it misses the delta.
    fallback = np.asarray(deeplift.deeplift_rescale(fn, images, TARGETS, reference,
                                                    max_pool='gradient'))
    assert np.abs(fallback.sum(axis=(1, 2, 3)) - delta).max() > 1e-3


def test_unknown_max_pool_rule():
  fn = _bound(PoolNet(), (1, 2, 2, 3))
  with pytest.raises(ValueError, match="max_pool must be one of"):
    deeplift.deeplift_rescale(fn, jnp.zeros((1, 2, 2, 3)), 0, max_pool='switches')
