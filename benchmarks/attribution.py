"""Attribution throughput on the face ResNet: images/s and achieved TFLOP/s per method, next
to a naive per-image Python loop in the same run.

  .venv/bin/python benchmarks/attribution.py [--batch 64] [--naive_images 2] [--repeats 3]
      [--precision default]

Network: dlib's face ResNet (extractor.load_face_resnet), or randomly initialised
facenet.FaceResNet params when the dlib file is missing (same FLOPs). Each image explains one
descriptor unit (unit b mod 128). FLOPs per call come from XLA's cost analysis of the compiled
batched method (loops unrolled, as XLA counts a rolled loop's body once); on a GPU, whose cost
analysis leaves out the convolutions handed to cuDNN, from the CPU counts in CPU_GFLOP.
The naive baseline is what one writes without batching: a Python loop over
images (and over IG path points / occluder positions) calling a jitted one-image function.
Times are medians after a warm-up (compile time excluded); run on a GPU for the H100 targets,
on CPU with a smaller --batch. Settings follow the issue's targets: IG 32 steps, occlusion 15x15
patches at stride 8 (17x17 = 289 positions), matmul precision 'default' (the targets' setting;
on a GPU that allows TF32; XLA on CPU computes float32 either way). The maps the report draws use
'highest' (``--precision highest`` times those).
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from absl import app, flags  # noqa: E402

from gradejax.nets import facenet  # noqa: E402
from gradejax import nets
from gradejax.attribution import class_activation, registry  # noqa: E402

BATCH = flags.DEFINE_integer('batch', 64, 'images per batched call')
NAIVE = flags.DEFINE_integer('naive_images', 2, 'images the naive loop explains')
REPEATS = flags.DEFINE_integer('repeats', 3, 'timed repetitions (median kept)')
METHODS = flags.DEFINE_string('methods', 'saliency,gradient_x_input,smoothgrad,'
                              'integrated_gradients,guided_backprop,deconvnet,cam,grad_cam,'
                              'guided_grad_cam,occlusion,deeplift', 'methods to time')
PRECISION = flags.DEFINE_string('precision', 'default',
                                'matmul precision for every method: default (the targets), high, '
                                'highest (what the report uses)')
LAYER = 'level1'
# GFLOP per image as XLA's CPU cost analysis counts them (benchmarks/RESULTS.md, the
# issue's settings). On a GPU, XLA's cost analysis leaves out the convolutions it hands to cuDNN
# as custom calls (an H200 run counted 0.01 GFLOP for saliency), so a GPU run uses these counts:
# the program, and hence its arithmetic, is the same on every backend.
CPU_GFLOP = {'saliency': 0.98, 'gradient_x_input': 0.98, 'smoothgrad': 15.73,
             'integrated_gradients': 31.26, 'guided_backprop': 0.98, 'deconvnet': 0.54,
             'cam': 0.49, 'grad_cam': 0.49, 'guided_grad_cam': 0.98, 'occlusion': 148.02,
             'deeplift': 1.97}
OPTIONS = dict(steps=32, chunk=16, n_samples=16, patch=15, stride=8)


def load_net():
  try:
    from gradejax.nets import extractor
    module, variables = extractor.load_face_resnet()
    return module, variables, 'dlib weights (extractor.load_face_resnet)'
  except Exception as e:  # noqa: BLE001 - any failure of the dlib route: same FLOPs at random
    module = facenet.FaceResNet()
    variables = module.init(jax.random.key(0), jnp.zeros((1, 150, 150, 3)))
    return module, variables, f'random FaceResNet params ({type(e).__name__}: {e})'


def timed(f, repeats):
  jax.block_until_ready(f())  # warm-up / compile
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(f())
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def naive(name, fn, x, t, weights):
  """Per-image Python loop; returns a thunk. None where no naive version is written."""
  grad1 = jax.jit(jax.grad(lambda xi, ti: fn(xi)[0][0, ti]))
  fwd1 = jax.jit(lambda xi: fn(xi)[0][0])
  if name in ('saliency', 'gradient_x_input'):
    return lambda: [grad1(x[i:i + 1], t[i]) for i in range(len(x))]
  if name == 'integrated_gradients':
    s = OPTIONS['steps']
    return lambda: [sum(grad1(x[i:i + 1] * ((k + 0.5) / s), t[i]) for k in range(s)) * x[i]
                    for i in range(len(x))]
  if name == 'occlusion':
    p, st = OPTIONS['patch'], OPTIONS['stride']

    def run():
      out = []
      for i in range(len(x)):
        base = fwd1(x[i:i + 1])[t[i]]
        for y0 in range(0, 150 - p + 1, st):
          for x0 in range(0, 150 - p + 1, st):
            out.append(base - fwd1(x[i:i + 1].at[:, y0:y0 + p, x0:x0 + p].set(0))[t[i]])
      return out
    return run
  return None


def main(argv):
  del argv
  module, variables, source = load_net()
  fn = nets.bind(module, variables)
  b = BATCH.value
  x = jax.random.uniform(jax.random.key(1), (b, 150, 150, 3))
  t = jnp.arange(b, dtype=jnp.int32) % 128
  weights = class_activation.linear_head_weights(fn, x, 'pooled', key=jax.random.key(2))
  dev = jax.devices()[0]
  print(f'device: {dev.platform} ({dev.device_kind}), cpu: {platform.processor() or "?"}, '
        f'nproc {os.cpu_count()}; jax {jax.__version__}; net: {source}')
  print(f'batch {b}, options {OPTIONS}, Grad-CAM/CAM layer {LAYER} (CAM: level0), precision '
        f'{PRECISION.value}')
  print('| method | batched images/s | GFLOP/image | achieved TFLOP/s | naive images/s | '
        'speed-up |')
  print('|---|---:|---:|---:|---:|---:|')
  for name in METHODS.value.split(','):
    m = registry.get(name)
    kw = registry.options_for(name, dict(layer='level0' if name == 'cam' else LAYER,
                                         key=jax.random.key(3), weights=weights, **OPTIONS))
    call = lambda: registry.compute(name, fn, x, t, precision=PRECISION.value, **kw)
    secs = timed(call, REPEATS.value)
    if jax.default_backend() != 'cpu' and name in CPU_GFLOP:
      flops = CPU_GFLOP[name] * 1e9 * b
    else:
      flops = xla_flops(name, m, fn, x, t, kw, weights)
    n_naive = min(NAIVE.value, b)
    thunk = naive(name, fn, x[:n_naive], t[:n_naive], weights)
    if thunk is not None:
      with jax.default_matmul_precision(PRECISION.value):  # the naive loop at the same precision
        nsecs = timed(thunk, 1)
      nrate = f'{n_naive / nsecs:.2f}'
      speed = f'{(b / secs) / (n_naive / nsecs):.1f}x'
    else:
      nrate = speed = '-'
    print(f'| {name} | {b / secs:.2f} | {flops / b / 1e9:.2f} | {flops / secs / 1e12:.4f} | '
          f'{nrate} | {speed} |', flush=True)


def xla_flops(name, m, fn, x, t, kw, weights):
  """XLA's FLOP count of the same compiled call (NaN where it has none)."""
  try:
    with jax.default_matmul_precision(PRECISION.value):
      jitted = _method_fn(name).jitted
      given = {'layer': kw['layer'], 'baseline': None, 'key': kw['key'], 'weights': weights}
      args = {k: given[k] for k in ('layer', 'baseline', 'key', 'weights')
              if getattr(m, f'needs_{k}')}
      opts = {k: v for k, v in OPTIONS.items() if k in m.options}
      if 'unroll' in m.options:  # XLA counts a rolled loop's body once: unroll to count
        opts['unroll'] = True
      cost = jitted.lower(fn, x, t, **args, **opts).compile().cost_analysis()
      cost = cost[0] if isinstance(cost, (list, tuple)) else cost
      return float(cost.get('flops', float('nan')))
  except Exception as e:  # noqa: BLE001 - FLOPs are informative only
    print(f'  (no cost analysis for {name}: {e})')
    return float('nan')


def _method_fn(name):
  from gradejax import attribution as a
  return {'saliency': a.saliency, 'gradient_x_input': a.gradient_x_input,
          'smoothgrad': a.smoothgrad, 'integrated_gradients': a.integrated_gradients,
          'guided_backprop': a.guided_backprop, 'deconvnet': a.deconvnet, 'cam': a.cam,
          'grad_cam': a.grad_cam, 'guided_grad_cam': a.guided_grad_cam,
          'occlusion': a.occlusion, 'deeplift': a.deeplift_rescale}[name]


if __name__ == '__main__':
  app.run(main)
