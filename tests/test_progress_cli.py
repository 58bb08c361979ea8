"""Progress lines of a real command in a child process: they arrive while the work runs (read
line by line as the child writes them), not only at the end; --noprogress is silent."""
import re
import subprocess
import sys
import time

from helpers import ROOT, child_env

LINE = re.compile(r'featurevis: 2 units x (\d+) steps.*: (\d+)/(\d+) steps')


def _run(tmp_path, *extra, steps: int):
  """Runs featurevis on the face net (2 units, one per batch: the second batch reuses the
  compiled loop); -> (stderr lines with their arrival time, exit time, return code)."""
  env = child_env(JAX_PLATFORMS='cpu', GRADEJAX_PROGRESS_EVERY='0')
  env.pop('GRADEJAX_PROGRESS', None)
  cmd = [sys.executable, '-m', 'gradejax.featurevis', '--workdir', str(tmp_path), '--net',
         'face', '--layer', 'level1', '--units', '3,7', '--steps', str(steps), '--batch', '1',
         *extra]
  child = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, bufsize=1)
  lines = [(time.monotonic(), line) for line in child.stderr]
  rc = child.wait(timeout=600)
  return lines, time.monotonic(), rc


def test_featurevis_progress_arrives_while_it_runs_and_noprogress_is_silent(tmp_path):
  lines, end, rc = _run(tmp_path / 'on', steps=6)
  assert rc == 0, ''.join(l for _, l in lines)[-3000:]
  got = [(t, int(m[2]), int(m[3])) for t, l in lines if (m := LINE.search(l))]
  assert got and got[0][1:] == (0, 12) and got[-1][1:] == (12, 12), got
  done = [d for _, d, _ in got]
  assert done == sorted(done)  # steps counted from inside the compiled loop, in order
  # Lines in the middle of the work: after the first batch's steps and before the second's
  # end, read from the pipe well before the child finished (not flushed at exit).
  middle = [(t, d) for t, d, _ in got if 0 < d < 12]
  assert any(d <= 6 for _, d in middle) and any(6 < d for _, d in middle), done
  last = max(t for t, d, _ in got if d == 12)
  first_middle = min(t for t, _ in middle)
  assert first_middle < last and first_middle < end - 0.5, (first_middle, last, end)
  assert re.search(r'elapsed \d', ''.join(l for _, l in lines))

  quiet, _, rc = _run(tmp_path / 'off', '--noprogress', steps=1)
  assert rc == 0
  assert not [l for _, l in quiet if 'featurevis: 2 units' in l or '/4 steps' in l]
  assert (tmp_path / 'off' / 'featurevis' / 'index.html').is_file()
