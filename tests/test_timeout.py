"""The per-test timeout (pytest.ini, pytest-timeout): a hang fails with a traceback of where
it hung instead of stalling CI for its whole limit (issue 22)."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_ini_sets_a_thread_timeout(request):
  assert float(request.config.getini('timeout')) >= 60
  # The thread method (not SIGALRM) is safe with JAX's threads and in blocking C calls.
  assert request.config.getini('timeout_method') == 'thread'


def test_a_hang_fails_with_its_traceback(tmp_path):
  (tmp_path / 'pytest.ini').write_text((ROOT / 'pytest.ini').read_text())
  (tmp_path / 'test_hang.py').write_text(
      'import threading\n\n'
      'def wait_forever():\n'
      '  threading.Event().wait()\n\n'
      'def test_hangs():\n'
      '  wait_forever()\n')
  # Only the limit is shortened here; the method and everything else come from the ini.
  r = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-o', 'timeout=2', 'test_hang.py'],
                     cwd=tmp_path, capture_output=True, text=True, timeout=120)
  out = r.stdout + r.stderr
  assert r.returncode != 0
  assert 'Timeout' in out and 'wait_forever' in out and 'test_hang.py' in out, out[-3000:]
