"""Feature visualisation of --units channels in one process vs --processes processes
(jax.distributed, coordinator on 127.0.0.1), on this machine, side by side in one run.

  .venv/bin/python benchmarks/featurevis_hosts.py [--units 64] [--steps 4] [--processes 2]
      [--devices 2] [--layer level2]

Face ResNet with dlib's weights, 150x150, Fourier + decorrelated colour, pad 8 + jitter 8 px +
rotation 5 deg + scale 5%, Adam (benchmarks/featurevis.py's settings), one compiled
``lax.scan`` over all units sharded on the global mesh (render.render_sharded). Each
configuration runs in fresh processes: "1 process" has --devices forced CPU devices, "P
processes" have --devices // P each, so both have the same mesh size and the same per-device
batch. Timed inside the processes: the first call (compile + run) and a second call with other
units on the compiled program; the table shows process 0's numbers (every process waits for
the gathered images, so they are the same to a few ms). The images of both configurations are
checked equal. On one machine both configurations share the same cores: the second shows the
cost of the multi-process machinery (start-up, gloo, gathering), not a speed-up; on several
hosts each process brings its own devices.

On a GPU host (jax's default backend gpu) run it with --devices 1 --processes 1, and on several
hosts start one process per host with --child and GRADEJAX_COORDINATOR etc. (see
gradejax/distributed.py).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer('units', 64, 'channels of --layer rendered in one batch')
flags.DEFINE_integer('steps', 4, 'Adam steps')
flags.DEFINE_integer('processes', 2, 'processes of the multi-process configuration')
flags.DEFINE_integer('devices', 2, 'devices in all (forced CPU devices)')
flags.DEFINE_string('layer', 'level2', 'tap whose channels are visualised')
flags.DEFINE_bool('child', False, 'internal: run the timed renders in this process')
flags.DEFINE_string('save', None, 'internal: where the child saves its images (.npy)')


def child() -> None:
  from gradejax import distributed
  distributed.initialize()  # from the environment the parent set (or a real cluster's)
  import jax
  import numpy as np
  from gradejax import nets
  from gradejax.featurevis import objectives, param, render, transform
  from gradejax.nets import extractor
  fn = nets.bind(*extractor.load_face_resnet())
  settings = render.Settings(steps=FLAGS.steps, learning_rate=0.05, robustness=transform.Robustness(
      pad=8, jitter=8, rotate=5, scale=(0.95, 1.05)))
  par = param.fourier(150, 150, decorrelate=True)
  objective_for = lambda u: objectives.channel_batch(FLAGS.layer, u)
  times, img = [], None
  for call in range(2):
    units = (np.arange(FLAGS.units) + call * FLAGS.units) % 128
    t = time.perf_counter()
    img, _ = render.render_sharded(fn, objective_for, par, units, jax.random.key(call), settings)
    img = np.asarray(img)  # gathered: every process waits for every shard
    times.append(time.perf_counter() - t)
  if distributed.is_main():
    np.save(FLAGS.save, img)
    print(json.dumps({'first': times[0], 'second': times[1], 'devices': jax.device_count(),
                      'processes': jax.process_count(), 'backend': jax.default_backend()}))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def launch(processes: int, save: str) -> dict:
  """Runs the child in ``processes`` local processes; process 0's timings + wall time."""
  per = FLAGS.devices // processes
  port = _free_port()
  args = [sys.executable, __file__, '--child', f'--units={FLAGS.units}', f'--steps={FLAGS.steps}',
          f'--layer={FLAGS.layer}', f'--save={save}']
  t = time.perf_counter()
  children = []
  try:
    for pid in range(processes):
      env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={per}')
      if processes > 1:
        env.update(GRADEJAX_COORDINATOR=f'127.0.0.1:{port}', GRADEJAX_NUM_PROCESSES=str(processes),
                   GRADEJAX_PROCESS_ID=str(pid))
      children.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True))
    outs = [c.communicate(timeout=3000) for c in children]
  finally:
    for c in children:
      if c.poll() is None:
        c.kill()
  for c, (_, err) in zip(children, outs):
    if c.returncode:
      sys.exit(f'child failed:\n{err[-3000:]}')
  res = json.loads(outs[0][0].strip().splitlines()[-1])
  res['wall'] = time.perf_counter() - t
  return res


def main(argv):
  del argv
  if FLAGS.child:
    return child()
  import numpy as np
  print(f'{FLAGS.units} units of {FLAGS.layer}, {FLAGS.steps} steps, {FLAGS.devices} CPU devices '
        f'in all; load average {os.getloadavg()[0]:.1f} at start')
  print('| configuration | devices | s (second call) | s/unit-step | first call incl. compile | '
        'wall incl. start-up |')
  print('|---|---:|---:|---:|---:|---:|')
  with tempfile.TemporaryDirectory() as tmp:
    images = []
    for p in sorted({1, FLAGS.processes}):
      r = launch(p, f'{tmp}/img{p}.npy')
      images.append(np.load(f'{tmp}/img{p}.npy'))
      print(f'| {p} process(es), {r["backend"]} | {r["devices"]} | {r["second"]:.2f} | '
            f'{r["second"] / FLAGS.units / FLAGS.steps:.3f} | {r["first"]:.1f} s | '
            f'{r["wall"]:.1f} s |', flush=True)
    diff = max(float(np.abs(a - images[0]).max()) for a in images)
  print(f'max |image difference| between configurations: {diff:.2g}; load average '
        f'{os.getloadavg()[0]:.1f} at end')


if __name__ == '__main__':
  app.run(main)
