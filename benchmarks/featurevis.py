"""Feature visualisation speed: face ResNet, 150x150, Fourier + decorrelated colour + jitter,
Adam; the whole run one compiled lax.scan per batch of units.

CPU (default): seconds per unit at --steps (64) for a batch of --batch units in one program,
next to a sequential one-unit-at-a-time loop in the same run, and their ratio. Every timed call
after the first of its batch size reuses the compiled program (units are traced arguments).
GPU (when jax's default backend is gpu): seconds per batch of 64 and 256 units at 512 steps and
achieved TFLOP/s. FLOPs per unit and step: XLA's cost analysis of the network's forward pass and
the input gradient of one channel of --layer (XLA drops the layers after it), measured on CPU;
the parameterisation's FFT and the transforms are not counted. On a GPU, XLA's cost analysis
leaves out the convolutions it hands to cuDNN, so a GPU run uses the CPU counts in STEP_GFLOP.

  .venv/bin/python benchmarks/featurevis.py [--steps 64 --batch 4 --sequential 2]
      [--mode auto|cpu|gpu] [--gpu_batches 64,256] [--gpu_steps 512]

``--mode gpu`` forces the GPU report on any backend (small ``--gpu_batches``/``--gpu_steps``
check the script on a CPU).
"""
from __future__ import annotations

import time

import jax
import numpy as np
from absl import app, flags

from gradejax.nets import extractor
from gradejax import nets
from gradejax.optvis import objectives, param, render, transform

FLAGS = flags.FLAGS
flags.DEFINE_integer('steps', 64, 'Adam steps (CPU run)')
flags.DEFINE_integer('batch', 4, 'units in one batched program (CPU run)')
flags.DEFINE_integer('sequential', 2, 'units in the one-at-a-time loop (CPU run)')
flags.DEFINE_string('layer', 'level2', 'tap whose channels are visualised')
flags.DEFINE_enum('mode', 'auto', ['auto', 'cpu', 'gpu'],
                  'which report: auto = gpu when jax\'s default backend is gpu')
flags.DEFINE_list('gpu_batches', ['64', '256'], 'units per batch in the GPU report')
flags.DEFINE_integer('gpu_steps', 512, 'Adam steps in the GPU report')
# GFLOP per image and step, forward + input gradient of one channel of the layer, XLA's CPU count
# (step_gflop on CPU, 2026-11-26). 'level4' is the first level after the stem.
STEP_GFLOP = {'level4': 0.368, 'level3': 0.667, 'level2': 0.845, 'level1': 0.974,
              'level0': 0.977, 'descriptor': 0.977}


def step_gflop(fn, layer):
  """GFLOP per image of one step's network work: XLA's count where the backend is the CPU,
  else the CPU count recorded in STEP_GFLOP (NaN for a layer not recorded)."""
  if jax.default_backend() != 'cpu':
    return STEP_GFLOP.get(layer, float('nan'))
  x = np.zeros((8, 150, 150, 3), np.float32)
  grad = lambda fn, x: jax.grad(lambda x: fn(x)[1][layer][..., 0].sum())(x)
  cost = jax.jit(grad).lower(fn, x).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return cost['flops'] / 8 / 1e9


def make_renderer(fn, steps):
  """-> go(units, seed) -> images: the same objective_for/param/settings objects on every call,
  so calls with as many units reuse one compiled program (the units are traced)."""
  settings = render.Settings(steps=steps, learning_rate=0.05,
                             robustness=transform.Robustness(pad=8, jitter=8, rotate=5,
                                                             scale=(0.95, 1.05)))
  par = param.fourier(150, 150, decorrelate=True)
  objective_for = lambda u: objectives.channel_batch(FLAGS.layer, u)
  return lambda units, seed: render.render_sharded(fn, objective_for, par, np.asarray(units),
                                                   jax.random.key(seed), settings)[0]


def timed(go, units, seed):
  t = time.perf_counter()
  jax.block_until_ready(go(units, seed))
  return time.perf_counter() - t


def main(argv):
  del argv
  module, variables = extractor.load_face_resnet()
  fn = nets.bind(module, variables)
  backend = jax.default_backend()
  gflop_step = step_gflop(fn, FLAGS.layer)
  print(f'backend {backend}, devices {len(jax.devices())}, layer {FLAGS.layer}, '
        f'{gflop_step:.3f} GFLOP per unit and step (forward + input gradient)')
  if FLAGS.mode == 'gpu' or (FLAGS.mode == 'auto' and backend == 'gpu'):
    steps = FLAGS.gpu_steps
    go = make_renderer(fn, steps)
    for b in map(int, FLAGS.gpu_batches):
      units = np.arange(b) % 128
      first = timed(go, units, 0)  # compile + run
      secs = timed(go, (units + 1) % 128, 1)  # other units, same program
      tflops = steps * b * gflop_step / secs / 1e3
      print(f'batch {b}: {secs:.2f} s per batch at {steps} steps (first call {first:.1f} s '
            f'incl. compile), {tflops:.3f} TFLOP/s', flush=True)
    return
  go = make_renderer(fn, FLAGS.steps)
  first_b = timed(go, np.arange(FLAGS.batch), 0)
  secs_b = timed(go, np.arange(FLAGS.batch) + FLAGS.batch, 1)
  per_unit_b = secs_b / FLAGS.batch
  first_s = timed(go, np.array([0]), 2)  # compiles the one-unit program
  t = time.perf_counter()
  for u in range(FLAGS.sequential):  # the loop a user without batching would write
    jax.block_until_ready(go(np.array([u + 1]), 10 + u))
  per_unit_s = (time.perf_counter() - t) / FLAGS.sequential
  print(f'| mode | units | s/unit at {FLAGS.steps} steps | compile + first run |')
  print('|---|---:|---:|---:|')
  print(f'| batched (one program) | {FLAGS.batch} | {per_unit_b:.2f} | {first_b:.1f} s |')
  print(f'| sequential, one unit at a time | {FLAGS.sequential} | {per_unit_s:.2f} | '
        f'{first_s:.1f} s |')
  print(f'ratio sequential / batched per unit: {per_unit_s / per_unit_b:.2f}x')
  gflop = FLAGS.steps * FLAGS.batch * gflop_step
  print(f'achieved (batched): {gflop / secs_b:.1f} GFLOP/s')


if __name__ == '__main__':
  app.run(main)
