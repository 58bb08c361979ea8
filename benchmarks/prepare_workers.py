"""prepare's photo stage (decode -> HOG detection -> 5-point alignment -> chip) with 1 and N
worker processes, side by side in one run: photos/s, the ratio, and the projected time for
--project photos.

  .venv/bin/python benchmarks/prepare_workers.py [--n 64] [--workers 1,2] [--project 100000]

The photos are the demo workbook's (real JPEG portraits, 400x500 px, as prepare reads them from
the .xlsx); each run's chips are checked equal to the 1-worker run's. Times include the pool's
start-up (spawned interpreters importing dlib and loading its models), as prepare pays it; the
workbook reading, labels and TFDS writing are not included (they are the same for any N). The
load average is printed: on a shared machine other processes take cores too, and the CPU time
per photo (this process + the pool's workers) shows whether the pool adds work or only waits.
"""
from __future__ import annotations

import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

from absl import app, flags  # noqa: E402

from gradejax.data import faces, images, parallel  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer('n', 64, 'demo photos')
flags.DEFINE_list('workers', ['1', '2'], 'worker counts to time (the first is the reference)')
flags.DEFINE_integer('project', 100_000, 'photos for the projected time')


def _cpu_seconds() -> float:
  """User + system CPU time of this process and its finished children (the pool's workers,
  once joined, start-up included): the work the photos cost, whatever the load."""
  me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
  return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv):
  del argv
  # Imported here, not at the top: spawned workers re-import this module, as they re-import
  # gradejax/prepare.py (which needs no demo workbook) in a real run.
  from gradejax.data import demo_data, workbook
  with tempfile.TemporaryDirectory() as tmp:
    demo_data.write_demo_workbook(f'{tmp}/demo.xlsx', n=FLAGS.n, seed=0)
    table = workbook.read_workbook(f'{tmp}/demo.xlsx')
  sources = [r.photo.data for r in table.rows]
  job = parallel.Job(faces.FaceOptions())
  print(f'{len(sources)} demo photos, {parallel.default_workers()} cores usable, load average '
        f'{os.getloadavg()[0]:.1f} at start')
  print(f'| workers | s | photos/s | speed-up | first photo, s | photos/s after it | '
        f'CPU ms/photo | {FLAGS.project:,} photos (projected) |')
  print('|---:|---:|---:|---:|---:|---:|---:|---:|')
  ref, base = None, None
  for w in map(int, FLAGS.workers):
    cpu = _cpu_seconds()
    t = time.perf_counter()
    done = []  # time of each result: the first includes the pool's start-up
    out = list(parallel.map_photos(sources, job, workers=w,
                                   progress=lambda d, n: done.append(time.perf_counter())))
    secs = time.perf_counter() - t
    cpu = _cpu_seconds() - cpu
    steady = (len(sources) - 1) / (done[-1] - done[0])
    chips = [images.encode_png(r.chip) if r.chip is not None else r.reason for r in out]
    if ref is None:
      ref, base = chips, secs
    assert chips == ref, f'{w} workers gave other chips than {FLAGS.workers[0]}'
    rate = len(sources) / secs
    hours = FLAGS.project / steady / 3600  # start-up is paid once: the steady rate decides
    print(f'| {w} | {secs:.2f} | {rate:.1f} | {base / secs:.2f}x | {done[0] - t:.2f} | '
          f'{steady:.1f} | {1000 * cpu / len(sources):.0f} | {hours:.2f} h |', flush=True)
  print(f'load average {os.getloadavg()[0]:.1f} at end; chips identical for every worker count')


if __name__ == '__main__':
  app.run(main)
