"""DeepLIFT through max pooling, side by side with captum's DeepLift, in one run (issue 21).

Run with gradejax's venv; it runs the captum half itself with the peers venv (torch + captum,
``--peers_python``), exchanging weights, images and attributions through one .npz:

  PYTHONPATH=$PWD JAX_PLATFORMS=cpu .venv/bin/python benchmarks/deeplift_captum.py \
      [--peers_python /work/peers/.venv/bin/python] [--face]

Toy nets (Flax, random weights): conv3x3-ReLU-maxpool-conv3x3-ReLU-maxpool-dense on 16x16x3
images, with 2x2/2 pools (captum's rule is exact there) and 3x3/2 pools (overlapping, as in
dlib's stem). For each net and reference (black, uniform random) it prints the summation-to-
delta error |sum(attr) - (f(x) - f(x'))| (max over images) of gradejax's rule, of its gradient
fallback and of captum, and the largest difference between gradejax's and captum's
attributions relative to the largest attribution. The torch net puts a copy (``Clone``
module) between each ReLU and its pool: captum 0.9.0 drops its max-pool rule when the
pool reads an ``nn.ReLU`` output directly (captum issue 1104), which ``--adjacent`` shows.
``--face`` adds the dlib face ResNet (JAX only: its stem pool overlaps, see above).
One JSON line per case.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

SIZE, CLASSES, BATCH = 16, 3, 4


def jax_side(path: str, face: bool) -> None:
  import flax.linen as nn
  import jax
  import jax.numpy as jnp

  from gradejax import nets
  from gradejax.attribution import deeplift

  class Net(nn.Module):
    window: int

    @nn.compact
    def __call__(self, images, *, relu=nn.relu):
      w = (self.window, self.window)
      x = relu(nn.Conv(6, (3, 3), bias_init=nn.initializers.normal(0.1), name='c0')(images))
      x = nn.max_pool(x, w, (2, 2))
      x = relu(nn.Conv(5, (3, 3), bias_init=nn.initializers.normal(0.1), name='c1')(x))
      x = nn.max_pool(x, w, (2, 2))
      return nn.Dense(CLASSES, name='d')(x.reshape(x.shape[0], -1))

  images = jax.random.uniform(jax.random.key(1), (BATCH, SIZE, SIZE, 3))
  refs = {'black': jnp.zeros_like(images),
          'random': jax.random.uniform(jax.random.key(2), images.shape)}
  targets = np.arange(BATCH) % CLASSES
  out = {'images': np.asarray(images), 'targets': targets}
  for ref_name, ref in refs.items():
    out[f'ref_{ref_name}'] = np.asarray(ref)
  for window in (2, 3):
    module = Net(window)
    variables = module.init(jax.random.key(0), images)
    fn = nets.bind(module, variables)
    p = variables['params']
    for name in ('c0', 'c1', 'd'):
      out[f'w{window}_{name}_kernel'] = np.asarray(p[name]['kernel'])
      out[f'w{window}_{name}_bias'] = np.asarray(p[name]['bias'])
    for ref_name, ref in refs.items():
      delta = np.asarray(fn(images)[0] - fn(ref)[0])[np.arange(BATCH), targets]
      out[f'delta_{window}_{ref_name}'] = delta
      for rule in deeplift.MAX_POOL_RULES:
        out[f'jax_{rule}_{window}_{ref_name}'] = np.asarray(
            deeplift.deeplift_rescale(fn, images, targets, ref, max_pool=rule))
  if face:
    from gradejax.nets import extractor
    module, variables = extractor.load_face_resnet()
    fn = nets.bind(module, variables)
    x = jax.random.uniform(jax.random.key(3), (2, 150, 150, 3))
    units = np.array([0, 1])
    for ref_name, ref in (('black', jnp.zeros_like(x)),
                          ('random', jax.random.uniform(jax.random.key(4), x.shape))):
      d = np.asarray(fn(x)[0] - fn(ref)[0])[np.arange(2), units]
      out[f'face_delta_{ref_name}'] = d
      for rule in deeplift.MAX_POOL_RULES:
        t = time.perf_counter()
        a = np.asarray(deeplift.deeplift_rescale(fn, x, units, ref, max_pool=rule))
        out[f'face_seconds_{rule}_{ref_name}'] = np.float64(time.perf_counter() - t)
        out[f'face_{rule}_{ref_name}'] = a
  np.savez(path, **out)


def captum_side(path: str, adjacent: bool) -> None:
  import warnings
  warnings.filterwarnings('ignore', category=UserWarning)  # captum's hook notices, per call
  import torch
  from captum.attr import DeepLift

  d = dict(np.load(path))

  class Clone(torch.nn.Module):
    def forward(self, x):
      return x.clone()

  class NHWCFlatten(torch.nn.Module):
    def forward(self, x):
      return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)

  def conv(k, b):
    c = torch.nn.Conv2d(k.shape[2], k.shape[3], 3, padding=1)
    c.weight.data = torch.tensor(k).permute(3, 2, 0, 1).contiguous()
    c.bias.data = torch.tensor(b)
    return c

  res = {}
  for window in (2, 3):
    g = lambda n: (d[f'w{window}_{n}_kernel'], d[f'w{window}_{n}_bias'])
    head = torch.nn.Linear(*g('d')[0].shape)
    head.weight.data, head.bias.data = torch.tensor(g('d')[0].T.copy()), torch.tensor(g('d')[1])
    sep = (lambda: []) if adjacent else (lambda: [Clone()])
    net = torch.nn.Sequential(
        conv(*g('c0')), torch.nn.ReLU(), *sep(), torch.nn.MaxPool2d(window, 2),
        conv(*g('c1')), torch.nn.ReLU(), *sep(), torch.nn.MaxPool2d(window, 2),
        NHWCFlatten(), head).eval()
    x = torch.tensor(d['images']).permute(0, 3, 1, 2).contiguous()
    t = torch.tensor(d['targets'])
    for ref_name in ('black', 'random'):
      r = torch.tensor(d[f'ref_{ref_name}']).permute(0, 3, 1, 2).contiguous()
      with torch.no_grad():
        delta = (net(x) - net(r))[torch.arange(len(t)), t].numpy()
      a = DeepLift(net).attribute(x, baselines=r, target=t)
      res[f'captum_{window}_{ref_name}'] = a.detach().permute(0, 2, 3, 1).numpy()
      res[f'torch_delta_{window}_{ref_name}'] = delta
  np.savez(path, **d, **res)


def report(path: str, adjacent: bool) -> None:
  d = dict(np.load(path))
  err = lambda a, delta: float(np.abs(a.sum(axis=(1, 2, 3)) - delta).max())
  for window in (2, 3):
    for ref_name in ('black', 'random'):
      delta = d[f'delta_{window}_{ref_name}']
      ours, cap = d[f'jax_rescale_{window}_{ref_name}'], d[f'captum_{window}_{ref_name}']
      print(json.dumps({
          'net': f'conv-relu-maxpool{window}x{window}/2', 'reference': ref_name,
          'captum_max_pool_rule': 'off (adjacent ReLU, issue 1104)' if adjacent else 'on',
          'max_abs_delta': float(np.abs(delta).max()),
          'torch_vs_jax_output_delta': float(np.abs(d[f'torch_delta_{window}_{ref_name}']
                                                    - delta).max()),
          'sum_error_gradejax_rule': err(ours, delta),
          'sum_error_gradejax_gradient': err(d[f'jax_gradient_{window}_{ref_name}'], delta),
          'sum_error_captum': err(cap, delta),
          'gradejax_vs_captum_rel': float(np.abs(ours - cap).max() / np.abs(cap).max()),
          'r': float(np.corrcoef(ours.ravel(), cap.ravel())[0, 1])}))
  for ref_name in ('black', 'random'):
    if f'face_delta_{ref_name}' in d:
      delta = d[f'face_delta_{ref_name}']
      print(json.dumps({
          'net': 'dlib face ResNet (descriptor units 0, 1)', 'reference': ref_name,
          'max_abs_delta': float(np.abs(delta).max()),
          'sum_error_gradejax_rule': err(d[f'face_rescale_{ref_name}'], delta),
          'sum_error_gradejax_gradient': err(d[f'face_gradient_{ref_name}'], delta),
          'seconds_rule': float(d[f'face_seconds_rescale_{ref_name}']),
          'seconds_gradient': float(d[f'face_seconds_gradient_{ref_name}'])}))


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--peers_python', default='/work/peers/.venv/bin/python')
  ap.add_argument('--face', action='store_true', help='also the dlib face ResNet (JAX only)')
  ap.add_argument('--adjacent', action='store_true',
                  help="pools read nn.ReLU directly (captum's rule then does not run)")
  ap.add_argument('--captum_side', help=argparse.SUPPRESS)
  args = ap.parse_args()
  if args.captum_side:
    captum_side(args.captum_side, args.adjacent)
    return
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'deeplift.npz')
    jax_side(path, args.face)
    cmd = [args.peers_python, os.path.abspath(__file__), '--captum_side', path]
    subprocess.run(cmd + (['--adjacent'] if args.adjacent else []), check=True,
                   env={**os.environ, 'PYTHONPATH': ''})
    report(path, args.adjacent)


if __name__ == '__main__':
  sys.exit(main())
