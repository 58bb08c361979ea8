"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1``) in Flax.

A line-for-line port of dlib's ``anet_type`` (see ``../shared/reference/dlib_resnet_format.md``):
stem conv 7x7/2 -> affine -> relu -> max pool 3x3/2, then 14 residual blocks in five levels
(32, 64, 128, 256, 256 channels), a global average pool and a 128-D linear map without bias.
Descriptors match dlib's ``compute_face_descriptor`` to < 1e-6 (max abs, float32; see
tests/test_facenet.py); two chips show the same person when their descriptors are closer than
0.6 (Euclidean).

Details that matter for parity with dlib:
* input: RGB, ``x * 255`` then ``(x - mean_c) / 256`` (dlib divides by 256, not 255);
* convolutions are cross-correlations with bias; padding is 0 for strided convs and pools and
  ``k // 2`` otherwise (explicit, not ``SAME``);
* a down block adds ``avgpool2x2(x)`` and ``block(x)`` with dlib's zero-padded add of
  mismatched shapes: channels grow, and at level1/level0 the block output (3x3, 1x1) is smaller
  than the pooled shortcut (4x4, 2x2): missing entries count as 0.

Params (all float32, NHWC/HWIO layout) are one readable pytree::

  params['stem']['conv']['kernel']       [7, 7, 3, 32]     params['stem']['conv']['bias']  [32]
  params['stem']['affine']['scale']      [32]              params['stem']['affine']['bias']
  params['level3']['block0']['conv1']['kernel'] [3, 3, 32, 64] ... ['affine2']['bias'] [64]
  params['fc']['kernel']                 [256, 128]

Each top-level entry is one param *variable* (a nested dict), not a submodule, so that the tap
names of docs/CONTRACTS.md (``level3``, ``level3/block0``, ...) can live in the top-level scope
next to them (Flax forbids a submodule and a variable of the same name).
"""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gradejax import nets
from gradejax.nets.dlib_format import (FACE_RESNET_CHIP_SIZE, FACE_RESNET_DESCRIPTOR_DIM,
                                  FACE_RESNET_LEVELS)

Array = jax.Array
Params = dict[str, Any]

# avg_red/green/blue stored in dlib_face_recognition_resnet_model_v1.dat (exact float32 values).
DLIB_INPUT_MEANS = (122.78199768066406, 117.00099945068359, 104.29799652099609)
STEM_CHANNELS = 32


def _conv_init(rng: Array, k: int, c_in: int, c_out: int) -> Params:
  std = np.sqrt(2.0 / (k * k * c_in))
  return {'kernel': std * jax.random.normal(rng, (k, k, c_in, c_out), jnp.float32),
          'bias': jnp.zeros((c_out,), jnp.float32)}


def _affine_init(c: int) -> Params:
  return {'scale': jnp.ones((c,), jnp.float32), 'bias': jnp.zeros((c,), jnp.float32)}


def _init_stem(rng: Array) -> Params:
  return {'conv': _conv_init(rng, 7, 3, STEM_CHANNELS), 'affine': _affine_init(STEM_CHANNELS)}


def _init_level(rng: Array, c_in: int, c: int, blocks: int) -> Params:
  out = {}
  for b, key in enumerate(jax.random.split(rng, blocks)):
    k1, k2 = jax.random.split(key)
    out[f'block{b}'] = {'conv1': _conv_init(k1, 3, c_in if b == 0 else c, c),
                        'affine1': _affine_init(c),
                        'conv2': _conv_init(k2, 3, c, c), 'affine2': _affine_init(c)}
  return out


def _init_fc(rng: Array, c_in: int, c_out: int) -> Params:
  return {'kernel': jax.random.normal(rng, (c_in, c_out), jnp.float32) / np.sqrt(c_in)}


def _conv(x: Array, kernel: Array, stride: int, pad: list[tuple[int, int]],
          precision: Any) -> Array:
  return lax.conv_general_dilated(x, kernel, (stride, stride), pad,
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'), precision=precision)


def _space_to_depth(x: Array, kernel: Array) -> tuple[Array, Array]:
  """A stride-2 convolution's input and kernel rewritten for a stride-1 one: each 2x2 block of
  pixels becomes one pixel of 4x the channels (the input padded with zeros to even sides) and
  the k x k kernel (padded to even k) a k/2 x k/2 kernel over them. The same sums, in another
  order."""
  b, h, w, c = x.shape
  x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
  h2, w2 = x.shape[1] // 2, x.shape[2] // 2
  x = x.reshape(b, h2, 2, w2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h2, w2, 4 * c)
  k, _, _, o = kernel.shape
  kernel = jnp.pad(kernel, ((0, k % 2), (0, k % 2), (0, 0), (0, 0)))
  k2 = kernel.shape[0] // 2
  kernel = kernel.reshape(k2, 2, k2, 2, c, o).transpose(0, 2, 1, 3, 4, 5).reshape(k2, k2, 4 * c, o)
  return x, kernel


def conv(x: Array, p: Params, stride: int, precision: Any = None) -> Array:
  """dlib ``con_``: x [B,H,W,I] -> [B,H',W',O], pad 0 if strided else k//2, plus bias.

  The strided (unpadded) convolutions are computed as padded ones cropped to dlib's output:
  XLA's CPU backend runs a convolution without padding on a slow path (measured 2026-12-03,
  jaxlib 0.10.2, 2-core CPU: the stem's 7x7/2 conv over 3 channels 600 ms per 128 chips
  unpadded, 270 ms padded, and the 3x3 stride-1 convs 4x slower unpadded), and the stem, with
  3 input channels, as a stride-1 conv over 2x2 pixel blocks (space to depth: 12 channels;
  ~6x faster forward, ~3.5x backward). Same sums in another order: the descriptors stay within
  float32 rounding of dlib's (tests/test_facenet.py)."""
  kernel = p['kernel']
  k = kernel.shape[0]
  if stride == 1:
    return _conv(x, kernel, 1, [(k // 2, k // 2)] * 2, precision) + p['bias']
  out_h, out_w = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
  if stride == 2 and x.shape[-1] < 8:
    x, kernel = _space_to_depth(x, kernel)
    stride = 1
  # One row and column of zeros at the high end (never read by the cropped outputs) moves the
  # convolution off XLA's unpadded path.
  y = _conv(x, kernel, stride, [(0, 1), (0, 1)], precision)
  return y[:, :out_h, :out_w] + p['bias']


def affine(x: Array, p: Params) -> Array:
  """dlib ``affine_`` in CONV_MODE: per-channel x * scale + bias."""
  return x * p['scale'] + p['bias']


def _max_pool(x: Array, k: int, stride: int) -> Array:
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, k, k, 1), (1, stride, stride, 1), 'VALID')


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def max_pool(x: Array, k: int, stride: int) -> Array:
  """Max over k x k windows, stride ``stride``, no padding: ``lax.reduce_window``, with the same
  gradient computed faster. XLA's CPU backend runs reduce_window's gradient (select and
  scatter) ~3.3x slower than the k*k strided compares and zero-interleaving pads of
  :func:`_max_pool_bwd` (measured 2026-12-03, the stem's pool, 32 chips: 55 ms -> 17 ms; the
  input gradient of the whole network ~20% faster). The forward stays a reduce_window, which
  DeepLIFT's max-pool rule (gradejax.attribution.deeplift) finds inside this call."""
  return _max_pool(x, k, stride)


def _max_pool_fwd(x, k, stride):
  y = _max_pool(x, k, stride)
  return y, (x, y)


def _max_pool_bwd(k, stride, res, dy):
  """Each output's gradient to the first input of its window (row-major) equal to the max, as
  reduce_window's select-and-scatter (with ties too)."""
  x, y = res
  b, h, w, c = x.shape
  oh, ow = y.shape[1:3]
  taken = jnp.zeros(y.shape, bool)
  dx = jnp.zeros_like(x)
  zero = jnp.zeros((), x.dtype)
  for i in range(k):
    for j in range(k):
      last_i, last_j = i + stride * (oh - 1), j + stride * (ow - 1)
      window = lax.slice(x, (0, i, j, 0), (b, last_i + 1, last_j + 1, c), (1, stride, stride, 1))
      hit = (window == y) & ~taken
      taken = taken | hit
      dx = dx + lax.pad(jnp.where(hit, dy, zero), zero,
                        ((0, 0, 0), (i, h - 1 - last_i, stride - 1),
                         (j, w - 1 - last_j, stride - 1), (0, 0, 0)))
  return (dx,)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def pool(x: Array, kind: str, k: int, stride: int) -> Array:
  """Max or mean over k x k windows, stride ``stride``, no padding (dlib's rule when strided)."""
  if kind == 'max':
    return max_pool(x, k, stride)
  return lax.reduce_window(x, 0.0, lax.add, (1, k, k, 1), (1, stride, stride, 1), 'VALID') / (k * k)


def zero_padded_add(a: Array, b: Array) -> Array:
  """dlib ``tt::add`` of mismatched shapes: both padded with zeros at the high end to the max."""
  shape = tuple(max(i, j) for i, j in zip(a.shape, b.shape))
  pad = lambda t: jnp.pad(t, [(0, s - d) for s, d in zip(shape, t.shape)])
  return pad(a) + pad(b)


def residual_block(x: Array, p: Params, down: bool, relu: nets.Relu, precision: Any = None
                   ) -> Array:
  """dlib ``ares`` (down=False) / ``ares_down`` (down=True): [B,H,W,C] -> [B,H',W',C']."""
  y = relu(affine(conv(x, p['conv1'], 2 if down else 1, precision), p['affine1']))
  y = affine(conv(y, p['conv2'], 1, precision), p['affine2'])
  shortcut = pool(x, 'avg', 2, 2) if down else x
  return relu(zero_padded_add(y, shortcut))


class FaceResNet(nn.Module):
  """dlib's face ResNet: ``images [B,150,150,3]`` in [0, 1] RGB -> descriptors ``[B,128]``.

  Attributes:
    input_means: per-channel (R, G, B) means on the 0..255 scale, from the .dat's input layer.
    stop_at: the tap whose output is returned (default the descriptor); an earlier tap is
      returned globally average pooled [B, C] and the layers after it are not built.
    precision: ``lax.Precision`` (or its name) for the convolutions and the final matmul;
      None = JAX's default (on TPU/GPU that may be reduced precision; use 'highest' for parity).

  ``images`` may be float32 in [0, 1], or uint8 in 0..255 (converted exactly: pixel values are
  used as they are, without the /255*255 round trip). Anything else raises ValueError.
  Taps (docs/CONTRACTS.md): ``stem`` [B,35,35,32], ``level4/block0..2``, ``level4`` [B,35,35,32],
  ``level3/block0..3``, ``level3`` [B,17,17,64], ``level2/block0..2``, ``level2`` [B,8,8,128],
  ``level1/block0..2``, ``level1`` [B,4,4,256], ``level0/block0``, ``level0`` [B,2,2,256],
  ``pooled`` [B,256], ``descriptor`` [B,128]. A level's output is its last block's output.
  """
  input_means: tuple[float, float, float] = DLIB_INPUT_MEANS
  precision: Any = None
  stop_at: str = 'descriptor'

  @nn.compact
  def __call__(self, images: Array, *, relu: nets.Relu = nn.relu) -> Array:
    # stop_at = an earlier tap: return it globally average pooled [B, C] and skip (and create
    # no params for) the layers after it; a head on an intermediate layer pays only for those.
    stop = lambda name, x: self.stop_at == name
    gap = lambda x: jnp.mean(x, axis=(1, 2))
    x = self._normalise(images)
    prec = self.precision
    p = self.param('stem', _init_stem)
    x = relu(affine(conv(x, p['conv'], 2, prec), p['affine']))
    x = nets.tap(self, 'stem', pool(x, 'max', 3, 2))
    if stop('stem', x):
      return gap(x)
    c_in = STEM_CHANNELS
    for name, c, blocks, down in FACE_RESNET_LEVELS:
      p = self.param(name, _init_level, c_in, c, blocks)
      for b in range(blocks):
        x = residual_block(x, p[f'block{b}'], down and b == 0, relu, prec)
        x = nets.tap(self, f'{name}/block{b}', x)
        if stop(f'{name}/block{b}', x):
          return gap(x)
      x = nets.tap(self, name, x)
      if stop(name, x):
        return gap(x)
      c_in = c
    x = nets.tap(self, 'pooled', gap(x))
    if stop('pooled', x):
      return x
    p = self.param('fc', _init_fc, c_in, FACE_RESNET_DESCRIPTOR_DIM)
    x = jnp.dot(x, p['kernel'], precision=prec)
    return nets.tap(self, 'descriptor', x)

  def _normalise(self, images: Array) -> Array:
    size = FACE_RESNET_CHIP_SIZE
    shape = tuple(getattr(images, 'shape', ()))
    if len(shape) != 4 or shape[1:] != (size, size, 3):
      raise ValueError(f'FaceResNet takes images [B, {size}, {size}, 3] (aligned RGB face chips, '
                       f'NHWC), got shape {shape}; align photos with dlib.get_face_chip(img, '
                       f'shape, {size}, 0.25) first.')
    dtype = jnp.dtype(images.dtype)
    if dtype == jnp.uint8:
      x = images.astype(jnp.float32)
    elif dtype == jnp.float32:
      x = images * 255.0
    else:
      raise ValueError(f'FaceResNet takes float32 images in [0, 1] or uint8 in 0..255, got '
                       f'{dtype}; convert with .astype(np.float32) (scaled to [0, 1]).')
    means = jnp.asarray(self.input_means, jnp.float32)
    return (x - means) / 256.0
