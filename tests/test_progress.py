"""gradejax.progress: the line format, the cadence and the switches (a fake clock; no sleeping)."""
import os

from gradejax import progress


class FakeClock:
  def __init__(self):
    self.t = 0.0

  def __call__(self):
    return self.t


def test_lines_follow_the_cadence_and_give_eta():
  clock, lines = FakeClock(), []
  with progress.task('maps', 10, every_s=5, emit=lines.append, on=True, clock=clock) as p:
    for _ in range(10):
      clock.t += 2.0
      p.update()
  # start, then a line whenever >= 5 s passed since the last one, then the end line.
  assert lines[0] == 'maps: 0/10 (0%), elapsed 0 s'
  assert lines[1] == 'maps: 3/10 (30%), elapsed 6 s, ETA 14 s'
  assert lines[2] == 'maps: 6/10 (60%), elapsed 12 s, ETA 8 s'
  assert lines[3] == 'maps: 9/10 (90%), elapsed 18 s, ETA 2 s'
  assert lines[-1] == 'maps: 10/10 (100%), elapsed 20 s'
  assert len(lines) == 5


def test_long_times_read_as_clock():
  clock, lines = FakeClock(), []
  p = progress.task('x', 5, every_s=0, emit=lines.append, on=True, clock=clock).start()
  clock.t = 60.0
  p.update()
  clock.t = 185.0
  p.update()
  assert lines[-1] == 'x: 2/5 (40%), elapsed 3:05, ETA 6:15'


def test_eta_leaves_out_the_first_unit_which_carries_the_compiles():
  # featurevis on the demo: the first of 128 steps took 19 s (compiling), the next 48 5 s.
  clock, lines = FakeClock(), []
  p = progress.task('steps', 128, every_s=0, emit=lines.append, on=True, clock=clock).start()
  clock.t = 19.0
  p.update()
  assert lines[-1] == 'steps: 1/128 (0%), elapsed 19 s'  # no rate yet: no ETA
  clock.t = 24.0
  p.update(48)
  assert lines[-1] == 'steps: 49/128 (38%), elapsed 24 s, ETA 8 s'  # 79 x 5/48 s


def test_switched_off_prints_nothing(monkeypatch):
  lines = []
  monkeypatch.setenv('GRADEJAX_PROGRESS', '0')
  assert not progress.enabled()
  for _ in progress.track(range(3), 'quiet', emit=lines.append, every_s=0):
    pass
  assert lines == []
  monkeypatch.setenv('GRADEJAX_PROGRESS', '1')
  assert progress.enabled()
  list(progress.track(range(3), 'loud', emit=lines.append, every_s=0))
  assert lines[0].startswith('loud: 0/3') and lines[-1].startswith('loud: 3/3')


def test_a_block_that_ends_is_done_and_an_error_prints_no_end_line():
  clock, lines = FakeClock(), []
  with progress.task('evaluate', 1, emit=lines.append, on=True, clock=clock):
    clock.t = 3.0
  assert lines == ['evaluate: 0/1 (0%), elapsed 0 s', 'evaluate: 1/1 (100%), elapsed 3 s']
  lines.clear()
  try:
    with progress.task('boom', 2, emit=lines.append, on=True, clock=clock):
      raise RuntimeError
  except RuntimeError:
    pass
  assert lines == ['boom: 0/2 (0%), elapsed 0 s']
