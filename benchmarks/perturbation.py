"""Perturbation-attribution throughput: RISE (2,000 masks), superpixel ablation (64 segments),
KernelSHAP over those segments and occlusion, images/s, ours beside captum's in one run.

  .venv/bin/python benchmarks/perturbation.py [--batch 2] [--torch_python /tmp/h12-venv/bin/python]

Two networks:
* dlib's face ResNet (extractor.load_face_resnet; random FaceResNet params of the same FLOPs
  when the dlib file is missing): our methods only (captum has no port of it here).
* a plain conv net of comparable FLOPs (5 convs 3x3 + ReLU, global mean, linear; 150x150x3
  in, 2 classes), built in Flax and, with the same weights, in torch: ours vs captum's
  FeatureAblation (feature_mask = the segments), KernelShap (same segments, same sample count)
  and Occlusion (same window and stride), each batching ``--per_eval`` perturbations per
  forward as ours batch ``chunk``. captum has no RISE. The torch side runs in a scratch venv
  (``--torch_python``; torch and captum are benchmark-only, not gradejax dependencies) and is
  checked to reproduce the JAX outputs first.

Segments are an 8 x 8 grid (exactly 64 per image, the same on both sides); SLIC's own cost (host,
once per image) is timed separately. Fill 0 (captum's default baseline) everywhere. Times are
medians after a warm-up (compile time excluded).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.dirname(__file__))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from gradejax import nets  # noqa: E402
from gradejax.attribution import registry, superpixels  # noqa: E402

import face_resnet_torch  # noqa: E402  (flatten only: numpy)

BATCH = flags.DEFINE_integer('batch', 2, 'images per call')
REPEATS = flags.DEFINE_integer('repeats', 1, 'timed repetitions (median kept)')
MASKS = flags.DEFINE_integer('rise_masks', 2000, 'RISE masks')
SHAP = flags.DEFINE_integer('shap_samples', 256, 'KernelSHAP coalitions')
PER_EVAL = flags.DEFINE_integer('per_eval', 32, 'perturbations per forward (ours: chunk)')
TORCH = flags.DEFINE_string('torch_python', '/tmp/h12-venv/bin/python',
                            'python of a venv with torch + captum ("" to skip captum)')
METHODS = flags.DEFINE_string('methods', 'rise,superpixel_ablation,kernel_shap,occlusion',
                              'methods to time')
FACE = flags.DEFINE_boolean('face', True, 'time the face ResNet (ours; captum on its torch port)')
SMALL = flags.DEFINE_boolean('small', True, 'time the small conv net (ours and captum)')
PATCH, STRIDE = 24, 8
CONVS = ((48, 2), (96, 2), (192, 2), (192, 1), (384, 2))  # (features, stride)


class SmallConvNet(nn.Module):
  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    x = images
    for i, (f, s) in enumerate(CONVS):
      x = relu(nn.Conv(f, (3, 3), strides=s, padding=((1, 1), (1, 1)), name=f'conv{i}')(x))
    x = nets.tap(self, 'pooled', jnp.mean(x, axis=(1, 2)))
    return nets.tap(self, 'logits', nn.Dense(2, name='head')(x))


def small_gflop(size=150) -> float:
  flops, c, h = 0, 3, size
  for f, s in CONVS:
    h = (h + 2 - 3) // s + 1
    flops += 2 * h * h * f * 9 * c
    c = f
  return flops / 1e9


def timed(f, repeats):
  jax.block_until_ready(f())
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(f())
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def options(name, per_eval):
  return {'rise': dict(n_masks=MASKS.value, cells=8, chunk=50, unroll=False),
          'superpixel_ablation': dict(chunk=per_eval),
          'kernel_shap': dict(n_samples=SHAP.value, chunk=per_eval),
          'occlusion': dict(patch=PATCH, stride=STRIDE, chunk=per_eval)}[name]


def ours(fn, x, t, seg, names):
  rates = {}
  for name in names:
    kw = options(name, PER_EVAL.value)
    if name in ('superpixel_ablation', 'kernel_shap'):
      kw['segments'] = seg
    kw = registry.options_for(name, dict(kw, key=jax.random.key(0), fill=0.0))
    call = lambda: registry.compute(name, fn, x, t, precision='default', **kw)
    rates[name] = x.shape[0] / timed(call, REPEATS.value)
    print(f'  ours {name}: {rates[name]:.3f} images/s', flush=True)
  return rates


def captum(arrays: dict, names) -> dict:
  """Runs benchmarks/perturbation_captum.py in the torch venv on ``arrays``; its JSON or {}."""
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'net.npz')
    np.savez(path, **arrays)
    cfg = dict(methods=names, shap_samples=SHAP.value, patch=PATCH, stride=STRIDE,
               per_eval=PER_EVAL.value, repeats=REPEATS.value, threads=os.cpu_count())
    script = os.path.join(os.path.dirname(__file__), 'perturbation_captum.py')
    res = subprocess.run([TORCH.value, script, path, json.dumps(cfg)], capture_output=True,
                         text=True, check=False)
  if res.returncode != 0:
    print(f'captum run failed: {res.stderr[-2000:]}')
    return {}
  out = json.loads(res.stdout.strip().splitlines()[-1])
  for k in ('face', 'small'):
    if k in out:
      print(f'captum (torch {out["torch"]}, {out["threads"]} threads): the torch {k} net '
            f'reproduces the JAX outputs to {out[k]["max_abs_output_diff_vs_jax"]:.1e} (max abs)')
  return out


def main(argv):
  del argv
  b = BATCH.value
  names = [m.strip() for m in METHODS.value.split(',') if m.strip()]
  x = jax.random.uniform(jax.random.key(1), (b, 150, 150, 3))
  seg = superpixels.grid_segments(b, (150, 150), (8, 8))
  dev = jax.devices()[0]
  print(f'device: {dev.platform} ({dev.device_kind}), cpu: {platform.processor() or "?"}, '
        f'nproc {os.cpu_count()}; jax {jax.__version__}; batch {b}; RISE {MASKS.value} masks; '
        f'64 segments; KernelSHAP {SHAP.value} samples; occlusion {PATCH}/{STRIDE}; '
        f'{PER_EVAL.value} perturbations per forward', flush=True)
  t0 = time.perf_counter()
  superpixels.slic_segments(np.asarray(x), 64)
  print(f'SLIC (host, 64 segments): {b / (time.perf_counter() - t0):.1f} images/s', flush=True)
  arrays = {'x': np.asarray(x), 'seg': seg}

  face = {}
  if FACE.value:
    from gradejax.nets import extractor, facenet
    try:
      module, variables = extractor.load_face_resnet()
      src = 'dlib weights'
    except Exception as e:  # noqa: BLE001 - same FLOPs at random
      module = facenet.FaceResNet()
      variables = module.init(jax.random.key(0), jnp.zeros((1, 150, 150, 3)))
      src = f'random FaceResNet params ({type(e).__name__})'
    print(f'face ResNet ({src}, 0.542 GFLOP/forward), descriptor unit b mod 128:', flush=True)
    fn = nets.bind(module, variables)
    ft = jnp.arange(b, dtype=jnp.int32) % 128
    face = ours(fn, x, ft, seg, names)
    with jax.default_matmul_precision('highest'):
      arrays['face_out'] = np.asarray(fn(x)[0])
    arrays['face_t'] = np.asarray(ft)
    arrays.update(face_resnet_torch.flatten(variables['params'], module.input_means))

  small = {}
  if SMALL.value:
    module = SmallConvNet()
    variables = module.init(jax.random.key(0), jnp.zeros((1, 150, 150, 3)))
    fn = nets.bind(module, variables)
    out = np.asarray(fn(x)[0])
    t = jnp.asarray(np.argmax(out, 1), jnp.int32)
    print(f'small conv net ({small_gflop():.3f} GFLOP/forward), predicted class:', flush=True)
    small = ours(fn, x, t, seg, names)
    p = variables['params']
    arrays.update({'t': np.asarray(t), 'out': out, 'wd': np.asarray(p['head']['kernel']),
                   'bd': np.asarray(p['head']['bias'])})
    for i, (_, s) in enumerate(CONVS):
      arrays[f'w{i}'] = np.asarray(p[f'conv{i}']['kernel'])
      arrays[f'b{i}'] = np.asarray(p[f'conv{i}']['bias'])
      arrays[f's{i}'] = np.array(s)

  theirs = captum(arrays, names) if TORCH.value else {}
  cell = lambda v: f'{v:.3f}' if v else '-'
  ratio = lambda a, c: f'{a / c:.1f}x' if a and c else '-'
  print('\n| method | face ResNet, ours (images/s) | face ResNet, captum | ours / captum | '
        'small net, ours | small net, captum | ours / captum |')
  print('|---|---:|---:|---:|---:|---:|---:|')
  for n in names:
    fo, fc = face.get(n), theirs.get('face', {}).get(n)
    so, sc = small.get(n), theirs.get('small', {}).get(n)
    none = '- (captum has no RISE)' if n == 'rise' else '-'
    print(f'| {n} | {cell(fo)} | {cell(fc) if fc else none} | {ratio(fo, fc)} | {cell(so)} | '
          f'{cell(sc) if sc else none} | {ratio(so, sc)} |')

if __name__ == '__main__':
  app.run(main)
