"""Feature visualisation speed: face ResNet, 150x150, Fourier + decorrelated colour + jitter,
Adam; the whole run one compiled lax.scan per batch of units.

CPU (default): seconds per unit at --steps (64) for a batch of --batch units in one program,
next to a sequential one-unit-at-a-time loop in the same run, and their ratio.
GPU (when jax's default backend is gpu): seconds per batch of 64 and 256 units at 512 steps and
achieved TFLOP/s, counting 3 forward passes per step (forward + backward) at 0.542 GFLOP each.

  .venv/bin/python benchmarks/featurevis.py [--steps 64 --batch 4 --sequential 2]
"""
from __future__ import annotations

import time

import jax
import numpy as np
from absl import app, flags

from gradejax import extractor, nets
from gradejax.featurevis import objectives, param, render, transform

FLAGS = flags.FLAGS
flags.DEFINE_integer('steps', 64, 'Adam steps (CPU run)')
flags.DEFINE_integer('batch', 4, 'units in one batched program (CPU run)')
flags.DEFINE_integer('sequential', 2, 'units in the one-at-a-time loop (CPU run)')
flags.DEFINE_string('layer', 'level2', 'tap whose channels are visualised')
GFLOP_PER_FORWARD = 0.542


def timed_render(fn, units, steps, seed=0):
  settings = render.Settings(steps=steps, learning_rate=0.05,
                             robustness=transform.Robustness(pad=8, jitter=8, rotate=5,
                                                             scale=(0.95, 1.05)))
  par = param.fourier(150, 150, decorrelate=True)
  go = lambda s: render.render_sharded(fn, lambda u: objectives.channel_batch(FLAGS.layer, u),
                                       par, np.asarray(units), jax.random.key(s), settings)
  t = time.perf_counter()
  jax.block_until_ready(go(seed))  # compile + run
  first = time.perf_counter() - t
  t = time.perf_counter()
  jax.block_until_ready(go(seed + 1))
  return first, time.perf_counter() - t


def main(argv):
  del argv
  module, variables = extractor.load_face_resnet()
  fn = nets.bind(module, variables)
  backend = jax.default_backend()
  print(f'backend {backend}, devices {len(jax.devices())}, layer {FLAGS.layer}')
  if backend == 'gpu':
    for b in (64, 256):
      first, secs = timed_render(fn, np.arange(b) % 128, 512)
      tflops = 512 * b * 3 * GFLOP_PER_FORWARD / secs / 1e3
      print(f'batch {b}: {secs:.2f} s per batch at 512 steps (first call {first:.1f} s incl. '
            f'compile), {tflops:.1f} TFLOP/s')
    return
  first_b, secs_b = timed_render(fn, np.arange(FLAGS.batch), FLAGS.steps)
  per_unit_b = secs_b / FLAGS.batch
  seq = []
  for u in range(FLAGS.sequential):
    seq.append(timed_render(fn, np.array([u]), FLAGS.steps, seed=10 + u)[1])
  per_unit_s = float(np.mean(seq))
  print(f'| mode | units | s/unit at {FLAGS.steps} steps | compile+first run |')
  print('|---|---:|---:|---:|')
  print(f'| batched (one program) | {FLAGS.batch} | {per_unit_b:.2f} | {first_b:.1f} s |')
  print(f'| sequential, one unit at a time | {FLAGS.sequential} | {per_unit_s:.2f} | - |')
  print(f'ratio sequential / batched per unit: {per_unit_s / per_unit_b:.2f}x')
  gflop = FLAGS.steps * FLAGS.batch * 3 * GFLOP_PER_FORWARD
  print(f'achieved (batched): {gflop / secs_b:.1f} GFLOP/s')


if __name__ == '__main__':
  app.run(main)
