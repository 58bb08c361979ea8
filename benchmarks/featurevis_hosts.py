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

With ``--data DIR`` (a ``prepare`` output) each configuration also finds the dataset examples
of the first call's units among the first ``--examples`` chips as the featurevis command does:
each process reads and decodes only its share of the TFDS records (``dataset.load_share``),
scores it, and the top-k and their images are exchanged (``top_k_across_processes``,
``gather_examples``); the table shows the read and the scoring per process and checks the top
images identical across configurations.

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
flags.DEFINE_string('data', None, 'prepared data: also time the dataset examples over it')
flags.DEFINE_integer('examples', 256, 'chips scanned for dataset examples (with --data)')
flags.DEFINE_integer('top_k', 4, 'dataset examples per unit (with --data)')


def child() -> None:
  from gradejax import distributed
  distributed.initialize()  # from the environment the parent set (or a real cluster's)
  import jax
  import numpy as np
  from gradejax import nets
  from gradejax.optvis import objectives, param, render, transform
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
  extra = {}
  if FLAGS.data:
    from gradejax.data import dataset
    from gradejax.optvis import dataset_examples
    units = np.arange(FLAGS.units) % 128
    t = time.perf_counter()
    mine = dataset.load_share(FLAGS.data, limit=FLAGS.examples)
    extra['read'] = time.perf_counter() - t
    extra['decoded'] = len(mine['images'])
    start, total = int(mine['rows'][0]) if len(mine['rows']) else 0, mine['total']
    t = time.perf_counter()
    top = dataset_examples.top_k_across_processes(fn, mine['images'], FLAGS.layer, units,
                                                  k=FLAGS.top_k, start=start, total=total)
    shown, index = dataset_examples.gather_examples(mine['images'], start, top['index'])
    extra['top'] = time.perf_counter() - t
    img = np.concatenate([img.ravel(), shown[index].ravel().astype(np.float32),
                          top['index'].ravel().astype(np.float32)])
  if distributed.is_main():
    np.save(FLAGS.save, img)
    print(json.dumps({'first': times[0], 'second': times[1], 'devices': jax.device_count(),
                      'processes': jax.process_count(), 'backend': jax.default_backend(),
                      **extra}))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def launch(processes: int, save: str) -> dict:
  """Runs the child in ``processes`` local processes; process 0's timings + wall time."""
  per = FLAGS.devices // processes
  port = _free_port()
  args = [sys.executable, __file__, '--child', f'--units={FLAGS.units}', f'--steps={FLAGS.steps}',
          f'--layer={FLAGS.layer}', f'--save={save}', f'--examples={FLAGS.examples}',
          f'--top_k={FLAGS.top_k}'] + ([f'--data={FLAGS.data}'] if FLAGS.data else [])
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
  data = FLAGS.data is not None
  print('| configuration | devices | s (second call) | s/unit-step | first call incl. compile | '
        'wall incl. start-up |' + (' chips decoded by process 0 | read, s | top-k + gather, s |'
                                   if data else ''))
  print('|---|---:|---:|---:|---:|---:|' + ('---:|---:|---:|' if data else ''))
  with tempfile.TemporaryDirectory() as tmp:
    images = []
    for p in sorted({1, FLAGS.processes}):
      r = launch(p, f'{tmp}/img{p}.npy')
      images.append(np.load(f'{tmp}/img{p}.npy'))
      print(f'| {p} process(es), {r["backend"]} | {r["devices"]} | {r["second"]:.2f} | '
            f'{r["second"] / FLAGS.units / FLAGS.steps:.3f} | {r["first"]:.1f} s | '
            f'{r["wall"]:.1f} s |' + (f' {r["decoded"]} of {FLAGS.examples} | {r["read"]:.2f} | '
                                       f'{r["top"]:.2f} |' if data else ''), flush=True)
    diff = max(float(np.abs(a - images[0]).max()) for a in images)
  print(f'max |image{" + top-k example" if data else ""} difference| between configurations: '
        f'{diff:.2g}; load average '
        f'{os.getloadavg()[0]:.1f} at end')


if __name__ == '__main__':
  app.run(main)
