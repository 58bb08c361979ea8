"""Toy networks that follow gradejax.nets' calling convention, shared by the attribution tests.

Each has an answer worked out by hand: a linear model (every gradient method has a closed form),
a small random ReLU conv net (completeness, summation to delta, Grad-CAM = CAM), a net that reads
one patch only (perturbation methods must concentrate there) and a product of region means
whose Shapley values are known in closed form. A test file may add its own one-off net.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from gradejax import nets


class LinearNet(nn.Module):
  """outputs[b, k] = sum_{h,w,c} x[b,h,w,c] w[h,w,c,k] (+ bias[k] with ``bias``)."""
  classes: int = 3
  bias: bool = True

  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    del relu
    w = self.param('w', nn.initializers.normal(1.0), images.shape[1:] + (self.classes,))
    x = nets.tap(self, 'input', images)
    out = jnp.einsum('bhwc,hwck->bk', x, w)
    if self.bias:
      out = out + self.param('b', nn.initializers.normal(1.0), (self.classes,))
    return nets.tap(self, 'logits', out)


class ReluConvNet(nn.Module):
  """conv3x3 -> relu -> conv3x3 -> relu (tap 'features') -> global mean (tap 'pooled') -> dense.

  With ``relu_head`` a hidden ReLU layer sits between the pooled features and the outputs.
  """
  classes: int = 3
  relu_head: bool = False

  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    x = relu(nn.Conv(6, (3, 3), bias_init=nn.initializers.normal(0.1))(images))
    conv = nn.Conv(5, (3, 3), bias_init=nn.initializers.normal(0.1))
    x = nets.tap(self, 'features', relu(conv(x)))
    x = nets.tap(self, 'pooled', jnp.mean(x, axis=(1, 2)))
    if self.relu_head:
      x = relu(nn.Dense(4)(x))
    return nets.tap(self, 'logits', nn.Dense(self.classes)(x))


PATCH = (slice(4, 8), slice(9, 13))  # rows, cols of the patch PatchNet reads


class PatchNet(nn.Module):
  """outputs[b] = (sum of x over PATCH, channel 0) * [1, -1]: only that patch matters."""

  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    del relu
    x = nets.tap(self, 'input', images)
    s = jnp.sum(x[:, PATCH[0], PATCH[1], 0], axis=(1, 2))
    return nets.tap(self, 'logits', jnp.stack([s, -s], axis=1))


class ProductNet(nn.Module):
  """f = mA mB + mA mB mC with mR the mean of channel 0 over region R (cells 0, 1, 2 of a
  2 x 3 grid on an 8 x 12 image). With x = 1 there and fill 0, the game over those cells is
  v(S) = [A, B in S] + [A, B, C in S]: Shapley values A = B = 1/2 + 1/3, C = 1/3, others 0."""

  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    del relu
    m = [jnp.mean(images[:, 0:4, 4 * j:4 * j + 4, 0], axis=(1, 2)) for j in range(3)]
    f = m[0] * m[1] + m[0] * m[1] * m[2]
    return nets.tap(self, 'logits', jnp.stack([f, -f], axis=1))


def bind(module: nn.Module, shape: tuple[int, ...], seed: int = 0):
  """(nets.Bound fn, variables) of ``module`` initialised for images of ``shape``."""
  variables = module.init(jax.random.key(seed), jnp.zeros(shape))
  return nets.bind(module, variables), variables
