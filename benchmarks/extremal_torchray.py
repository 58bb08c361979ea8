"""Extremal perturbations, ours beside torchray's, in one run: parity on a toy net and images/s
on dlib's face ResNet.

  PYTHONPATH=$PWD JAX_PLATFORMS=cpu /work/main/.venv/bin/python benchmarks/extremal_torchray.py \
      [--images 2] [--steps 5] [--data /tmp/h26-ws/data/demo] [--torch_python /work/peers/.venv/bin/python]

1. Parity (toy): a net reading only an 8 x 8 patch of a 32 x 32 image (its logit = the patch's
   sum of channel 0), image of ones, area 1/16, step 1, sigma 2, no jitter, 800 steps (the same
   schedule on both sides), fill: torchray's 'fade' (x * m) = ours fill_mode='value', fill=0.
   Both masks are compared with the patch and with each other.
2. Speed: the face ResNet explaining descriptor unit b mod 128 of ``--images`` chips at 4 areas
   (0.02, 0.05, 0.1, 0.2), ``--steps`` steps, blur fill (torchray: its 8-level blur pyramid;
   ours: the blend with one blur), precision 'default' (float32). torchray optimises one image
   at a time (its areas batched); ours all images x areas in one compiled scan. Compile time is
   excluded (a warm-up call on the same shapes first).
The torch side is benchmarks/extremal_torchray_torch.py in the peers venv (torch is never a
gradejax dependency); arrays travel in an .npz.
"""
from __future__ import annotations

import json
import os
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

import face_resnet_torch  # noqa: E402  (flatten only: numpy)
from gradejax import nets  # noqa: E402
from gradejax.attribution import extremal  # noqa: E402

IMAGES = flags.DEFINE_integer('images', 2, 'chips timed on the face ResNet')
STEPS = flags.DEFINE_integer('steps', 5, 'optimisation steps timed')
DATA = flags.DEFINE_string('data', '', 'a prepared folder to take chips from (else uniform noise)')
TORCH = flags.DEFINE_string('torch_python', '/work/peers/.venv/bin/python', 'peers venv python')
AREAS = (0.02, 0.05, 0.1, 0.2)
H = 32
PATCH = (slice(8, 16), slice(18, 26))


class PatchNet(nn.Module):
  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    s = jnp.sum(images[:, PATCH[0], PATCH[1], 0], axis=(1, 2))
    return nets.tap(self, 'logits', jnp.stack([s, -s], axis=1))


def chips(n: int) -> np.ndarray:
  if DATA.value:
    from gradejax.data import dataset
    return dataset.load_arrays(DATA.value, rows=list(range(n)))['images'].astype(np.float32) / 255
  return np.asarray(jax.random.uniform(jax.random.key(1), (n, 150, 150, 3)))


def toy() -> dict:
  m = PatchNet()
  fn = nets.bind(m, m.init(jax.random.key(0), jnp.zeros((1, H, H, 3))))
  truth = np.zeros((H, H), bool)
  truth[PATCH] = True
  r = extremal.extremal_perturbation(fn, jnp.ones((1, H, H, 3)), 0, areas=(truth.mean(),),
                                     steps=800, step=1, sigma=2.0, jitter=False,
                                     fill_mode='value', fill=0.0, optimiser='torchray',
                                     reward='raw')
  return {'toy_mask': r.masks[0, 0], 'toy_score': r.scores[0, 0], 'truth': truth}


def main(argv):
  del argv
  arrays = toy()
  from gradejax.nets import extractor
  module, variables = extractor.load_face_resnet()
  fn = nets.bind(module, variables)
  x = chips(IMAGES.value)
  t = np.arange(len(x), dtype=np.int32) % 128
  kw = dict(areas=AREAS, steps=STEPS.value, precision='default', optimiser='torchray',
            reward='raw')  # torchray's schedule and generator (sigma 21, step 7) on both sides
  extremal.extremal_perturbation(fn, x, t, **kw)  # compile
  t0 = time.perf_counter()
  r = extremal.extremal_perturbation(fn, x, t, **kw)
  ours = len(x) / (time.perf_counter() - t0)
  # The default schedule (Adam, its own sigma and step from the smallest area, the reward's
  # starting gradient: one extra forward and backward) on the same images and steps.
  kd = dict(areas=AREAS, steps=STEPS.value, precision='default')
  extremal.extremal_perturbation(fn, x, t, **kd)  # compile
  t0 = time.perf_counter()
  extremal.extremal_perturbation(fn, x, t, **kd)
  ours_default = len(x) / (time.perf_counter() - t0)
  with jax.default_matmul_precision('highest'):
    face_out = np.asarray(fn(jnp.asarray(x))[0])
  arrays.update(x=x, t=t, ours_masks=r.masks, face_out=face_out)
  arrays.update(face_resnet_torch.flatten(variables['params'], module.input_means))
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'in.npz')
    np.savez(path, **arrays)
    script = os.path.join(os.path.dirname(__file__), 'extremal_torchray_torch.py')
    cfg = dict(steps=STEPS.value, areas=AREAS, threads=os.cpu_count())
    res = subprocess.run([TORCH.value, script, path, json.dumps(cfg)], capture_output=True,
                         text=True, check=False)
  if res.returncode != 0:
    sys.exit(f'torchray side failed: {res.stderr[-3000:]}')
  theirs = json.loads(res.stdout.strip().splitlines()[-1])
  truth, mine = arrays['truth'], arrays['toy_mask']
  k = int(truth.sum())

  def top_iou(m):
    top = np.zeros(m.size, bool)
    top[np.argsort(-np.asarray(m).ravel(), kind='stable')[:k]] = True
    top = top.reshape(m.shape)
    return float((top & truth).sum() / (top | truth).sum())

  tm = np.asarray(theirs['toy_mask'])
  print(f'toy parity (32 x 32, 8 x 8 patch, 800 steps, fade/value-0 fill): ours top-{k} IoU '
        f'with the patch {top_iou(mine):.3f}, torchray {top_iou(tm):.3f}; masks: mean |ours - '
        f'torchray| {np.abs(mine - tm).mean():.3f}, correlation '
        f'{np.corrcoef(mine.ravel(), tm.ravel())[0, 1]:.3f}; mask sums {mine.sum():.1f} vs '
        f'{tm.sum():.1f} (patch {k}); preserved score {arrays["toy_score"]:.2f} vs '
        f'{theirs["toy_score"]:.2f} (clean {k})')
  print(f'face ResNet, {len(x)} chips x {len(AREAS)} areas x {STEPS.value} steps: ours '
        f'{ours:.4f} images/s, torchray {theirs["rate"]:.4f} images/s (torch '
        f'{theirs["torch"]}, {theirs["threads"]} threads): {ours / theirs["rate"]:.2f}x; the '
        f'torch net reproduces our descriptors to {theirs["max_abs_diff"]:.1e}; our default '
        f'(Adam) schedule {ours_default:.4f} images/s ({ours_default / theirs["rate"]:.2f}x)')


if __name__ == '__main__':
  app.run(main)
