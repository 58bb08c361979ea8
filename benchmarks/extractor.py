"""Descriptor throughput: our jitted FaceResNet vs dlib's compute_face_descriptor, same run.

  .venv/bin/python benchmarks/extractor.py [--repeats 5] [--dlib_chips 32]
      [--mode auto|cpu|gpu] [--gpu_batches 64,256] [--ceiling_n 8192]

CPU: descriptors/s at batch 1 and 64 (compile time reported separately), dlib per chip and with
a list of chips, and the ratio at batch 64. GPU (if ``jax.devices()[0].platform == 'gpu'``):
images/s at batch 64 and 256 and achieved TFLOP/s (0.542 GFLOP per chip, multiply-add = 2 FLOP,
counting taps over zero padding) against a measured float32 matmul ceiling at the same precision.
``--mode gpu`` forces the GPU report on any backend (with small ``--gpu_batches`` and
``--ceiling_n`` it checks the script on a CPU). dlib is only needed for the CPU comparison and
for the astronaut chips; without it the chips are uniform noise (same FLOPs).
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
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
from absl import app, flags  # noqa: E402

from gradejax.nets import extractor  # noqa: E402
from gradejax import paths

GFLOP_PER_CHIP = 0.542
FLAGS = flags.DEFINE_integer('repeats', 5, 'timed repetitions per measurement (median kept)')
DLIB_CHIPS = flags.DEFINE_integer('dlib_chips', 32, 'chips dlib describes per measurement')
MODE = flags.DEFINE_enum('mode', 'auto', ['auto', 'cpu', 'gpu'],
                         'which report: auto = gpu when jax.devices()[0] is a GPU')
GPU_BATCHES = flags.DEFINE_list('gpu_batches', ['64', '256'], 'batch sizes of the GPU report')
CEILING_N = flags.DEFINE_integer('ceiling_n', 8192, 'size of the square matmul ceiling')


def cpu_model() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      return next(l.split(':', 1)[1].strip() for l in f if l.startswith('model name'))
  except (OSError, StopIteration):
    return platform.processor() or platform.machine()


def make_chips(n: int) -> np.ndarray:
  """n uint8 chips [n,150,150,3]: the astronaut's aligned face, then noisy copies of it
  (uniform noise where dlib or its landmark model is missing, as on a GPU machine: same FLOPs)."""
  rng = np.random.default_rng(0)
  try:
    import dlib  # noqa: PLC0415 - optional on a GPU machine
    landmarks = paths.dlib_model(paths.SHAPE_PREDICTOR_5)
  except (ImportError, FileNotFoundError) as e:
    print(f'chips are uniform noise ({type(e).__name__}: {e})')
    return rng.integers(0, 256, (n, 150, 150, 3), dtype=np.uint8)
  img = skimage.data.astronaut()
  det = dlib.get_frontal_face_detector()
  sp = dlib.shape_predictor(str(landmarks))
  dets, scores, _ = det.run(img, 1, 0.0)
  chip = dlib.get_face_chip(img, sp(img, dets[int(np.argmax(scores))]), 150, 0.25)
  noise = rng.normal(0, 6, (n, 150, 150, 3))
  return np.clip(chip[None] + noise, 0, 255).astype(np.uint8)


def timed(fn, repeats: int) -> float:
  """Median wall seconds of fn() (fn must block until its result is ready)."""
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def ours(module, variables, chips: np.ndarray, batch: int, repeats: int) -> tuple[float, float]:
  """(compile seconds, descriptors/s) for one jitted batch of ``batch`` chips."""
  f = jax.jit(lambda p, x: module.apply({'params': p}, x))
  x = jax.device_put(np.resize(chips, (batch,) + chips.shape[1:]).astype(np.float32) / 255)
  params = variables['params']
  t = time.perf_counter()
  compiled = f.lower(params, x).compile()
  compile_s = time.perf_counter() - t
  compiled(params, x).block_until_ready()  # warm-up
  return compile_s, batch / timed(lambda: compiled(params, x).block_until_ready(), repeats)


def dlib_rates(chips: np.ndarray, repeats: int) -> tuple[float, float]:
  """dlib descriptors/s: one call per chip, and one call with the list of chips."""
  import dlib  # noqa: PLC0415
  model = dlib.face_recognition_model_v1(str(paths.dlib_model(paths.FACE_RECOGNITION)))
  chip_list = [np.ascontiguousarray(c) for c in chips]
  model.compute_face_descriptor(chip_list[0])  # warm-up
  single = timed(lambda: [model.compute_face_descriptor(c) for c in chip_list], repeats)
  listed = timed(lambda: model.compute_face_descriptor(chip_list), repeats)
  return len(chips) / single, len(chips) / listed


def matmul_ceiling_tflops(repeats: int, n: int = 8192) -> float:
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  return 2 * n ** 3 / timed(lambda: f(a).block_until_ready(), repeats) / 1e12


def main(argv):
  del argv
  repeats = FLAGS.value
  dev = jax.devices()[0]
  print(f'machine: {cpu_model()}, nproc={os.cpu_count()}, '
        f'jax {jax.__version__} on {dev.platform} ({dev.device_kind})')
  module, variables = extractor.load_face_resnet()
  chips = make_chips(256)

  gpu = MODE.value == 'gpu' or (MODE.value == 'auto' and dev.platform == 'gpu')
  results = {}
  for batch in ((1, 64) if not gpu else ()):
    compile_s, rate = ours(module, variables, chips, batch, repeats)
    results[batch] = rate
    print(f'ours  batch {batch:3d}: {rate:8.1f} descriptors/s ({1e3 / rate:6.2f} ms/chip), '
          f'compile {compile_s:.2f} s')
  if not gpu:
    single, listed = dlib_rates(chips[:DLIB_CHIPS.value], repeats)
    best = max(single, listed)
    print(f'dlib  per chip : {single:8.1f} descriptors/s ({1e3 / single:6.2f} ms/chip)')
    print(f'dlib  list of {DLIB_CHIPS.value}: {listed:8.1f} descriptors/s '
          f'({1e3 / listed:6.2f} ms/chip)')
    print(f'ratio ours@64 / dlib best: {results[64] / best:.2f}x   '
          f'(ours@1 / dlib best: {results[1] / best:.2f}x)')
  else:
    n = CEILING_N.value
    ceiling = matmul_ceiling_tflops(repeats, n)
    print(f'float32 {n}x{n} matmul ceiling (default precision): {ceiling:.3f} TFLOP/s')
    for batch in map(int, GPU_BATCHES.value):
      compile_s, rate = ours(module, variables, chips, batch, repeats)
      tflops = rate * GFLOP_PER_CHIP / 1e3
      print(f'ours  batch {batch:3d}: {rate:9.1f} images/s, {tflops:.3f} TFLOP/s '
            f'= {100 * tflops / ceiling:.1f}% of the matmul ceiling (compile {compile_s:.1f} s)')


if __name__ == '__main__':
  app.run(main)
