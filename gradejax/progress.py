"""Progress lines for long work, in one style for every command.

A long step prints ``LABEL: done/total (pct%), elapsed Xs, ETA Ys`` through absl logging when it
starts (the ETA from the rate after the first unit, which carries the compiles), then at a steady cadence (every ``GRADEJAX_PROGRESS_EVERY`` seconds, default 5) and once
when it ends, so a person reading the output can tell a long step from a hang, in a terminal and
in a log file alike. Lines carry counts only, never rows, names or images.

Every command that imports this module gets the absl flag ``--progress`` (``--noprogress``:
silent). ``GRADEJAX_PROGRESS=0`` turns the lines off where no flag reaches (library calls,
tests' child processes).

    with progress.task('report: occlusion maps', total=48) as p:
      for batch in batches:
        ...
        p.update(len(batch))
"""
from __future__ import annotations

import os
import time
from typing import Callable, Iterable, Iterator, TypeVar

from absl import flags
from absl import logging

T = TypeVar('T')

if 'progress' not in flags.FLAGS:
  flags.DEFINE_boolean('progress', True,
                       'Print progress lines (done/total, elapsed, ETA) during long steps; '
                       '--noprogress: silent.')


def enabled() -> bool:
  """Whether progress lines are printed: the --progress flag, else GRADEJAX_PROGRESS (default on)."""
  env = os.environ.get('GRADEJAX_PROGRESS', '').strip().lower()
  if env in ('0', 'false', 'no', 'off'):
    return False
  if flags.FLAGS.is_parsed():
    return bool(flags.FLAGS.progress)
  return True


def _every_s() -> float:
  try:
    return max(0.0, float(os.environ.get('GRADEJAX_PROGRESS_EVERY', '5')))
  except ValueError:
    return 5.0


def _clock(seconds: float) -> str:
  seconds = int(round(seconds))
  if seconds < 60:
    return f'{seconds} s'
  m, s = divmod(seconds, 60)
  if m < 60:
    return f'{m}:{s:02d}'
  h, m = divmod(m, 60)
  return f'{h}:{m:02d}:{s:02d}'


class Task:
  """One long step with a known amount of work; see the module docstring.

  ``emit`` receives each finished line (default: ``absl.logging.info``). ``clock`` is the time
  source (seconds), injectable for tests.
  """

  def __init__(self, label: str, total: int, *, unit: str = '', every_s: float | None = None,
               emit: Callable[[str], None] | None = None, on: bool | None = None,
               clock: Callable[[], float] = time.monotonic):
    self.label = label
    self.total = max(int(total), 0)
    self.unit = f' {unit}' if unit else ''
    self.every_s = _every_s() if every_s is None else every_s
    self.emit = emit or (lambda line: logging.info('%s', line))
    self.on = enabled() if on is None else on
    self.clock = clock
    self.done = 0
    self.t0 = clock()
    self._last = None
    self._closed = False
    self._first = None  # (clock, done) when the first unit finished: it carries the compiles

  def line(self) -> str:
    elapsed = self.clock() - self.t0
    pct = 100 * self.done // self.total if self.total else 100
    text = f'{self.label}: {self.done}/{self.total}{self.unit} ({pct}%), elapsed {_clock(elapsed)}'
    # The rate from the first finished unit on: the first one carries the step's compiles
    # (featurevis' first of 128 steps took 19 s of 40, which read as ETA 39:25), so no ETA is
    # promised until a second unit has been timed.
    if self._first is not None and self._first[1] < self.done < self.total:
      t1, d1 = self._first
      rate = (self.clock() - t1) / (self.done - d1)
      text += f', ETA {_clock(rate * (self.total - self.done))}'
    return text

  def _show(self) -> None:
    if self.on:
      self.emit(self.line())
    self._last = self.clock()

  def start(self) -> 'Task':
    self._show()
    return self

  def update(self, n: int = 1) -> None:
    """Marks ``n`` more units done; prints when the cadence is due (not at the end: close())."""
    self.done = min(self.done + int(n), self.total) if self.total else self.done + int(n)
    if self._first is None and self.done > 0:
      self._first = (self.clock(), self.done)
    if self._last is None or self.clock() - self._last >= self.every_s:
      if self.done < self.total:
        self._show()

  def close(self) -> None:
    if not self._closed:
      self._closed = True
      self._show()

  def __enter__(self) -> 'Task':
    return self.start()

  def __exit__(self, exc_type, exc, tb) -> None:
    if exc_type is None:
      self.done = max(self.done, self.total)  # the block ran to its end: the work is done
      self.close()


def task(label: str, total: int, **kw) -> Task:
  """A :class:`Task`, to be used as a context manager."""
  return Task(label, total, **kw)


def track(items: Iterable[T], label: str, total: int | None = None, *, size: Callable[[T], int]
          = lambda _: 1, **kw) -> Iterator[T]:
  """Yields ``items`` while printing progress; ``size(item)`` units are done after each one."""
  if total is None:
    total = len(items)  # type: ignore[arg-type]
  with Task(label, total, **kw) as p:
    for item in items:
      yield item
      p.update(size(item))
