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
3. ``--defaults [--workdir RUN]``: time to a result instead of per-step speed. Each side at its
   default schedule (ours: the Adam schedule, extremal.DEFAULT_STEPS steps; torchray: its 800
   iterations, plus a short run of ``--torchray_short`` iterations), the preserve game at the
   4 areas, one image at a time on both sides (and ours batched), then every mask judged alike:
   made binary at exactly its area (its top pixels kept, the rest blurred;
   ``extremal_starts.region_scores``), the target's score read. With ``--workdir`` the target
   is a trained run's predicted class logit (the classifier ported as in tcav_captum.py).
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

FLAGS = flags.FLAGS

import face_resnet_torch  # noqa: E402  (flatten only: numpy)
from gradejax import nets  # noqa: E402
from gradejax.attribution import extremal  # noqa: E402

IMAGES = flags.DEFINE_integer('images', 2, 'chips timed on the face ResNet')
STEPS = flags.DEFINE_integer('steps', 5, 'optimisation steps timed')
DATA = flags.DEFINE_string('data', '', 'a prepared folder to take chips from (else uniform noise)')
TORCH = flags.DEFINE_string('torch_python', '/work/peers/.venv/bin/python', 'peers venv python')
DEFAULTS = flags.DEFINE_bool('defaults', False, 'instead: time to a result, each side at its '
                             'default schedule (ours: Adam, extremal.DEFAULT_STEPS; torchray: '
                             'its 800 iterations, and --torchray_short), every mask scored alike')
LONG = flags.DEFINE_integer('torchray_long', 800, 'with --defaults: torchray\'s iterations '
                            '(its default, 800)')
WORKDIR = flags.DEFINE_string('workdir', '', 'with --defaults: a trained run whose classifier is '
                               'explained (its predicted class\'s logit; chips from --data or '
                               'the run\'s data); else the bare face ResNet\'s descriptor units')
SHORT = flags.DEFINE_integer('torchray_short', 60, 'with --defaults: torchray also run at this '
                             'many iterations (its schedule stretched), to show what the steps buy')
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


def defaults(fn, module, variables) -> None:
  """Time to a result: the preserve game (both sides' default) at 4 areas on the same chips,
  ours at its default Adam schedule, torchray at its default 800 iterations (and a short run),
  then every mask scored by one judge: made binary at exactly its area (its top pixels kept,
  the rest blurred: extremal_starts.region_scores, blur fill sigma 10) and the target's score
  read. The judge is ours (torchray optimised against its own blur pyramid, so its masks are
  judged on a slightly different fill than the one they were made for)."""
  from gradejax.attribution import extremal_starts
  x = chips(IMAGES.value)
  t = np.arange(len(x), dtype=np.int32) % 128
  what = 'descriptor unit b mod 128'
  if WORKDIR.value:
    t = np.argmax(np.asarray(fn(jnp.asarray(x))[0]), axis=1).astype(np.int32)
    what = "the trained classifier's predicted class logit"
  kd = dict(areas=AREAS, precision='default')
  extremal.extremal_perturbation(fn, x[:1], t[:1], **kd)  # compile (per image, like torchray)
  t0 = time.perf_counter()
  ours = [extremal.extremal_perturbation(fn, x[i:i + 1], t[i:i + 1], **kd).masks[0]
          for i in range(len(x))]
  ours_s = (time.perf_counter() - t0) / len(x)
  t0 = time.perf_counter()
  batched = extremal.extremal_perturbation(fn, x, t, **kd).masks  # all images in one loop
  batch_s = (time.perf_counter() - t0) / len(x)
  arrays = dict(x=x, t=t, face_out=np.asarray(fn(jnp.asarray(x))[0]), truth=np.zeros((1, 1)))
  if WORKDIR.value:  # the demo classifier, ported as in tcav_captum.py
    arrays.update(face_resnet_torch.flatten_classifier(variables, module.input_means))
  else:
    arrays.update(face_resnet_torch.flatten(variables['params'], module.input_means))
  with tempfile.TemporaryDirectory() as tmp:
    path, out = os.path.join(tmp, 'in.npz'), os.path.join(tmp, 'out.npz')
    np.savez(path, **arrays)
    script = os.path.join(os.path.dirname(__file__), 'extremal_torchray_torch.py')
    cfg = dict(areas=AREAS, threads=os.cpu_count(), defaults=[SHORT.value, LONG.value], out=out)
    res = subprocess.run([TORCH.value, script, path, json.dumps(cfg)], capture_output=True,
                         text=True, check=False)
    if res.returncode != 0:
      sys.exit(f'torchray side failed: {res.stderr[-3000:]}')
    theirs = json.loads(res.stdout.strip().splitlines()[-1])
    got = np.load(out)
    their_masks = {n: got[f'masks_{n}'] for n in (SHORT.value, LONG.value)}  # [B, A, H, W]
  judge = lambda m: np.asarray(extremal_starts.region_scores(
      fn, jnp.asarray(x), t, jnp.swapaxes(jnp.asarray(m, jnp.float32), 0, 1), areas=AREAS,
      variant='preserve', fill=0.0, fill_mode='blur', blur_sigma=10.0, score='logit',
      precision='default')).T  # [B, A]
  clean = np.asarray(fn(jnp.asarray(x))[0])[np.arange(len(x)), t]
  rows = [(f'ours, Adam {extremal.DEFAULT_STEPS} steps, one image at a time', ours_s,
           judge(np.stack(ours))),
          (f'ours, the {len(x)} images in one loop', batch_s, judge(batched))]
  for n in (SHORT.value, LONG.value):
    rows.append((f'torchray, {n} iterations', theirs['seconds'][str(n)], judge(their_masks[n])))
  print(f'time to a result, face ResNet, {len(x)} chips x areas {AREAS}, preserve game, '
        f'{what} (clean score {clean.mean():.3f}); torch {theirs["torch"]}, '
        f'{theirs["threads"]} threads; judge: binary at exactly the area, rest blurred')
  print('| run | s per image | ' + ' | '.join(f'kept score, area {a}' for a in AREAS) + ' |')
  print('|---|---:|' + '---:|' * len(AREAS))
  for name, sec, score in rows:
    print(f'| {name} | {sec:.1f} | ' + ' | '.join(f'{v:.3f}' for v in score.mean(0)) + ' |')
  ref = theirs['seconds'][str(LONG.value)]
  print(f'torchray {LONG.value} / ours one at a time: {ref / ours_s:.2f}x; / ours batched: '
        f'{ref / batch_s:.2f}x; the torch net reproduces our outputs to '
        f'{theirs["max_abs_diff"]:.1e}')


def main(argv):
  del argv
  if DEFAULTS.value:
    if WORKDIR.value:
      from gradejax.training import runs
      module, variables, config = runs.load_trained(WORKDIR.value)
      if not DATA.value:
        FLAGS.data = str(config.data_dir)
    else:
      from gradejax.nets import extractor
      module, variables = extractor.load_face_resnet()
    defaults(nets.bind(module, variables), module, variables)
    return
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
  # The same steps as one compiled lax.scan (the accelerator's path; on CPU the default is a
  # host loop over one compiled step: extremal.host_loop).
  extremal.extremal_perturbation(fn, x, t, loop=False, **kw)  # compile
  t0 = time.perf_counter()
  extremal.extremal_perturbation(fn, x, t, loop=False, **kw)
  ours_scan = len(x) / (time.perf_counter() - t0)
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
        f'(Adam) schedule {ours_default:.4f} images/s ({ours_default / theirs["rate"]:.2f}x); '
        f'torchray\'s schedule as one compiled scan {ours_scan:.4f} images/s '
        f'({ours_scan / theirs["rate"]:.2f}x; host loop: {extremal.host_loop()})')


if __name__ == '__main__':
  app.run(main)
