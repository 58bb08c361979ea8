"""How far float32 gradient maps of the face ResNet are from exact arithmetic, before and after
a change to its arithmetic (issue 21's "equal to 1e-6" check across the face ResNet rewrite).

Integrated gradients and saliency of the first N held-out images of a trained run, each in
float32 and in float64 (x64 on, every parameter and image cast), with the code of this checkout
and, given ``--old_code``, with another checkout (e.g. ``git archive 192f05d | tar -x -C DIR``,
the commit before the rewrite). Each code runs in its own process. It prints, per image, the
largest difference of two maps relative to the reference map's largest |value|.

  PYTHONPATH=$PWD JAX_PLATFORMS=cpu python benchmarks/ig_rounding.py --workdir RUN \
      [--old_code DIR] [--images 8]

The float64 runs lift the face ResNet's float32-only input check for the run (a monkeypatch of
``FaceResNet._normalise`` here, not in the library).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
from absl import app, flags

WORKDIR = flags.DEFINE_string('workdir', None, 'trained run (python -m gradejax.train)')
OLD = flags.DEFINE_string('old_code', '', 'another checkout of gradejax to compare with')
IMAGES = flags.DEFINE_integer('images', 8, 'the first N images of the held-out fold')
METHODS = ('integrated_gradients', 'saliency')

_WORKER = r'''
import sys, numpy as np, jax
dtype = sys.argv[3]
if dtype == 'float64':
  jax.config.update('jax_enable_x64', True)
import jax.numpy as jnp
from gradejax import nets
from gradejax.nets import facenet
from gradejax.attribution import registry
from gradejax.data import dataset
from gradejax.training import runs
if dtype == 'float64':
  def _normalise(self, images):
    means = jnp.asarray(self.input_means, images.dtype)
    return (images * 255.0 - means) / 256.0
  facenet.FaceResNet._normalise = _normalise
module, variables, config = runs.load_trained(sys.argv[1])
if dtype == 'float64':
  variables = jax.tree_util.tree_map(
      lambda v: np.asarray(v, np.float64) if np.asarray(v).dtype == np.float32 else v, variables)
arrays = dataset.load_arrays(config.data_dir)
idx = np.flatnonzero(np.asarray(arrays['fold']) == int(config.valid_fold))[:int(sys.argv[4])]
imgs = np.asarray(arrays['images'])[idx]
x = imgs.astype(dtype) / (255.0 if imgs.dtype == np.uint8 else 1.0)
fn = nets.bind(module, variables)
out, _ = fn(x)
assert out.dtype == dtype, out.dtype
t = np.asarray(out).argmax(-1)
np.savez(sys.argv[2], **{m: np.asarray(registry.heatmap(m, fn, x, t), np.float64)
                         for m in %r})
''' % (METHODS,)


def _maps(code: str, dtype: str, tmp: str) -> dict[str, np.ndarray]:
  out = os.path.join(tmp, f'{abs(hash(code))}_{dtype}.npz')
  env = dict(os.environ, PYTHONPATH=code, JAX_PLATFORMS=os.environ.get('JAX_PLATFORMS', 'cpu'))
  subprocess.run([sys.executable, '-c', _WORKER, WORKDIR.value, out, dtype, str(IMAGES.value)],
                 env=env, check=True, cwd=tmp, stderr=subprocess.DEVNULL)
  return dict(np.load(out))


def _rel(u: np.ndarray, ref: np.ndarray) -> np.ndarray:
  return np.max(np.abs(u - ref), axis=(1, 2)) / np.max(np.abs(ref), axis=(1, 2))


def main(argv):
  del argv
  here = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
  codes = {'this': here}
  if OLD.value:
    codes['old'] = os.path.abspath(OLD.value)
  with tempfile.TemporaryDirectory() as tmp:
    maps = {(c, d): _maps(path, d, tmp) for c, path in codes.items()
            for d in ('float32', 'float64')}
  ref = maps[('old' if OLD.value else 'this', 'float64')]
  def fmt(v):
    return (' '.join(f'{x:.1e}' for x in v)
            + f'  (median {np.median(v):.1e}, max {v.max():.1e})')
  against = 'old' if OLD.value else 'this'
  for m in METHODS:
    print(f'{m}: max |difference| / max |reference map|, per image')
    for c in codes:
      print(f'  {c} float32 vs {against} float64: {fmt(_rel(maps[(c, "float32")][m], ref[m]))}')
    if OLD.value:
      print(f'  this float64 vs old float64: {fmt(_rel(maps[("this", "float64")][m], ref[m]))}')
      print(f'  this float32 vs old float32: '
            f'{fmt(_rel(maps[("this", "float32")][m], maps[("old", "float32")][m]))}')


if __name__ == '__main__':
  flags.mark_flag_as_required('workdir')
  app.run(main)
