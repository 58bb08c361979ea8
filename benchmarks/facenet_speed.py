"""The face ResNet's forward and input gradient with today's convolutions and max pool against
the plain ones they replace (unpadded strided lax convs, reduce_window's own gradient), side by
side in one run, alternating, on the same random chips; prints images/s and the ratio.

  JAX_PLATFORMS=cpu python benchmarks/facenet_speed.py [--batch 8] [--reps 10]
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gradejax.nets import extractor, facenet


def plain_conv(x, p, stride, precision=None):
  k = p['kernel'].shape[0]
  pad = 0 if stride != 1 else k // 2
  return lax.conv_general_dilated(x, p['kernel'], (stride, stride), [(pad, pad), (pad, pad)],
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                  precision=precision) + p['bias']


def plain_pool(x, kind, k, stride):
  init, op = (-jnp.inf, lax.max) if kind == 'max' else (0.0, lax.add)
  y = lax.reduce_window(x, init, op, (1, k, k, 1), (1, stride, stride, 1), 'VALID')
  return y if kind == 'max' else y / (k * k)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument('--batch', type=int, default=8)
  ap.add_argument('--reps', type=int, default=10)
  a = ap.parse_args()
  mod, variables = extractor.load_face_resnet()
  x = jnp.asarray(np.random.RandomState(0).rand(a.batch, 150, 150, 3).astype(np.float32))
  ours = (facenet.conv, facenet.pool)
  sides = {'plain': (plain_conv, plain_pool), 'gradejax': ours}
  rate, out = {}, {}
  for _ in range(2):
    for name, (c, p) in sides.items():
      facenet.conv, facenet.pool = c, p
      f = jax.jit(lambda v, x: mod.apply(v, x))
      g = jax.jit(jax.grad(lambda x: jnp.sum(mod.apply(variables, x)[:, 0])))
      y, gy = f(variables, x).block_until_ready(), g(x).block_until_ready()
      t = time.perf_counter()
      for _ in range(a.reps):
        f(variables, x).block_until_ready()
      fw = a.batch * a.reps / (time.perf_counter() - t)
      t = time.perf_counter()
      for _ in range(a.reps):
        g(x).block_until_ready()
      gw = a.batch * a.reps / (time.perf_counter() - t)
      rate.setdefault(name, []).append((fw, gw))
      out[name] = (np.asarray(y), np.asarray(gy))
  facenet.conv, facenet.pool = ours
  for name, r in rate.items():
    print(f'{name:9s} forward {max(v[0] for v in r):6.1f} img/s   input gradient '
          f'{max(v[1] for v in r):6.1f} img/s   (batch {a.batch}, best of 2 rounds)')
  f0, g0 = (max(v[0] for v in rate['plain']), max(v[1] for v in rate['plain']))
  f1, g1 = (max(v[0] for v in rate['gradejax']), max(v[1] for v in rate['gradejax']))
  print(f'ratio     forward {f1 / f0:.2f}x   input gradient {g1 / g0:.2f}x')
  d = np.abs(out['plain'][0] - out['gradejax'][0]).max()
  dg = np.abs(out['plain'][1] - out['gradejax'][1]).max() / np.abs(out['plain'][1]).max()
  print(f'max |descriptor difference| {d:.2e}; max gradient difference / max |gradient| {dg:.2e}')


if __name__ == '__main__':
  main()
