"""Where the report's (and featurevis') seconds go: compiles and seconds per section.

  python benchmarks/report_speed.py visualize --workdir RUN --truth T.csv --concepts C ...
  python benchmarks/report_speed.py featurevis --workdir RUN --layer logits --units 0:2 ...
  python benchmarks/report_speed.py compare REPORT_DIR_A REPORT_DIR_B
  REPORT_SPEED_DUMP=a.pkl python benchmarks/report_speed.py visualize ...  (then b.pkl)
  python benchmarks/report_speed.py compare_results a.pkl b.pkl

The first two run the command (the rest of argv are its flags) with a jax.monitoring listener
that counts XLA compiles (backend compile events) and their seconds, and print, after each of
the report's sections (its ``report: ... done in`` lap) and at the end, the compiles and compile
seconds since the last lap. ``compare`` checks two ``report/`` folders: every number in every
text file (index.html, *.json, *.csv) equal to 1e-6 (relative to max(1, |value|)), every other
file byte-identical; prints the differences and exits 1 on any.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import pickle
import re
import sys
import time

_COMPILE = '/jax/core/compile/backend_compile_duration'
_TRACE = '/jax/core/compile/jaxpr_trace_duration'
_LOWER = '/jax/core/compile/jaxpr_to_mlir_module_duration'


class Counter:
  def __init__(self):
    self.n, self.compile_s, self.trace_s, self.lower_s = 0, 0.0, 0.0, 0.0
    self.last = (0, 0.0, 0.0, 0.0)
    self.by_name: dict[str, list[float]] = {}  # since the last lap

  def top(self, k: int = 6) -> str:
    """The ``k`` functions with the most compile seconds since the last call."""
    rows = sorted(self.by_name.items(), key=lambda kv: -sum(kv[1]))[:k]
    self.by_name = {}
    return '; '.join(f'{n} x{len(d)} {sum(d):.1f} s' for n, d in rows)

  def __call__(self, event, duration, fun_name='?', **kw):
    if event == _COMPILE:
      self.n += 1
      self.compile_s += duration
      self.by_name.setdefault(fun_name, []).append(duration)
    elif event == _TRACE:
      self.trace_s += duration
    elif event == _LOWER:
      self.lower_s += duration

  def since_last(self) -> str:
    now = (self.n, self.compile_s, self.trace_s, self.lower_s)
    d = [a - b for a, b in zip(now, self.last)]
    self.last = now
    return (f'{d[0]} compiles, {d[1]:.1f} s compiling, {d[2]:.1f} s tracing, '
            f'{d[3]:.1f} s lowering')


def _profiled(command: str) -> None:
  import jax
  counter = Counter()
  jax.monitoring.register_event_duration_secs_listener(counter)
  t0 = time.monotonic()
  if command == 'visualize':
    from gradejax import visualize
    import importlib
    run_lib = importlib.import_module('gradejax.attribution.battery.run')
    lap = run_lib._Clock.lap

    def lap_and_count(self, section):
      lap(self, section)
      print(f'PROFILE {section}: {self.seconds[section]:.1f} s; {counter.since_last()}; '
            f'top: {counter.top()}', flush=True)

    run_lib._Clock.lap = lap_and_count
    dump = os.environ.get('REPORT_SPEED_DUMP')
    if dump:  # the battery's Result, every number of it (maps included), for compare_results
      battery_run = visualize.battery.run

      def run_and_dump(*a, **kw):
        res = battery_run(*a, **kw)
        with open(dump, 'wb') as f:
          pickle.dump(_numbers(res), f)
        return res

      visualize.battery.run = run_and_dump
    main = visualize.command
  else:
    from gradejax import featurevis
    main = featurevis.command
  try:
    main()
  except SystemExit as e:
    if e.code not in (None, 0):
      raise
  finally:
    print(f'PROFILE total: {time.monotonic() - t0:.1f} s; after the last lap: '
          f'{counter.since_last()}; all: {counter.n} compiles, {counter.compile_s:.1f} s '
          f'compiling, {counter.trace_s:.1f} s tracing, {counter.lower_s:.1f} s lowering; '
          f'top after the last lap: {counter.top()}', flush=True)


def _numbers(x, path='result'):
  """Every number of a battery Result: path -> float64 array (seconds per section left out)."""
  import numpy as np
  out = {}
  if dataclasses.is_dataclass(x) and not isinstance(x, type):
    for f in dataclasses.fields(x):
      if f.name not in ('seconds', 'profile', 'opts'):
        out.update(_numbers(getattr(x, f.name), f'{path}.{f.name}'))
  elif isinstance(x, dict):
    for k, v in x.items():
      out.update(_numbers(v, f'{path}[{k!r}]'))
  elif isinstance(x, (list, tuple)):
    for i, v in enumerate(x):
      out.update(_numbers(v, f'{path}[{i}]'))
  elif isinstance(x, (bool, int, float, np.number, np.bool_)) or (
      isinstance(x, np.ndarray) and x.dtype.kind in 'biuf'):
    out[path] = np.asarray(x, np.float64)
  elif isinstance(x, (str, np.ndarray)) or x is None:
    out[path] = str(x) if not isinstance(x, np.ndarray) else x.astype(str)
  return out


def compare_results(a: str, b: str, tol: float = 1e-6) -> int:
  """Two REPORT_SPEED_DUMP pickles: every number equal to ``tol`` (relative to max(1, |a|)),
  every string equal; prints the worst difference; returns how many entries differ."""
  import numpy as np
  with open(a, 'rb') as f:
    x = pickle.load(f)
  with open(b, 'rb') as f:
    y = pickle.load(f)
  bad = 0
  for k in sorted(set(x) ^ set(y)):
    print(f'only in {"A" if k in x else "B"}: {k}')
    bad += 1
  worst, where, values = 0.0, '', 0
  for k in sorted(set(x) & set(y)):
    u, v = x[k], y[k]
    if isinstance(u, str) or getattr(u, 'dtype', None) is not None and u.dtype.kind == 'U':
      if not np.array_equal(u, v):
        print(f'differs: {k}: {str(u)[:80]} / {str(v)[:80]}')
        bad += 1
      continue
    if np.shape(u) != np.shape(v):
      print(f'shape differs: {k} {np.shape(u)} / {np.shape(v)}')
      bad += 1
      continue
    values += np.size(u)
    both_nan = np.isnan(u) & np.isnan(v)
    d = np.where(both_nan, 0.0, np.abs(u - v) / np.maximum(1.0, np.abs(u)))
    d = np.where(np.isnan(d), np.inf, d)
    m = float(np.max(d)) if np.size(d) else 0.0
    if m > worst:
      worst, where = m, k
    if m > tol:
      print(f'differs: {k}: worst relative difference {m:.2e}')
      bad += 1
  print(f'{len(set(x) & set(y))} entries, {values} numbers compared; worst relative '
        f'difference {worst:.2e} ({where or "none"}); {bad} beyond {tol:g}')
  return bad


_NUMBER = re.compile(r'[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|nan|inf')
_TEXT = ('.html', '.json', '.csv', '.txt', '.svg')


def compare(a: pathlib.Path, b: pathlib.Path, tol: float = 1e-6) -> int:
  """Differences between two report folders (printed); returns how many files differ."""
  fa = {p.relative_to(a) for p in a.rglob('*') if p.is_file()}
  fb = {p.relative_to(b) for p in b.rglob('*') if p.is_file()}
  bad = 0
  for p in sorted(fa ^ fb):
    print(f'only in {"A" if p in fa else "B"}: {p}')
    bad += 1
  same_bytes = numbers = 0
  for p in sorted(fa & fb):
    x, y = (a / p).read_bytes(), (b / p).read_bytes()
    if x == y:
      same_bytes += 1
      if p.suffix in _TEXT:
        numbers += len(_NUMBER.findall(x.decode('utf-8', 'replace')))
      continue
    if p.suffix not in _TEXT:
      print(f'differs (bytes): {p}')
      bad += 1
      continue
    tx, ty = x.decode('utf-8', 'replace'), y.decode('utf-8', 'replace')
    nx, ny = _NUMBER.findall(tx), _NUMBER.findall(ty)
    if _NUMBER.sub('#', tx) != _NUMBER.sub('#', ty) or len(nx) != len(ny):
      print(f'differs (text around the numbers): {p}')
      bad += 1
      continue
    worst = 0.0
    for u, v in zip(nx, ny):
      fu, fv = float(u), float(v)
      if u != v and not (fu != fu and fv != fv):
        worst = max(worst, abs(fu - fv) / max(1.0, abs(fu)))
    numbers += len(nx)
    print(f'{p}: {len(nx)} numbers, worst relative difference {worst:.2e}')
    bad += worst > tol
  print(f'{same_bytes} of {len(fa & fb)} common files byte-identical; {numbers} numbers in '
        f'text files compared; {bad} file(s) differ beyond {tol:g}')
  return bad


if __name__ == '__main__':
  cmd = sys.argv[1]
  if cmd == 'compare':
    sys.exit(1 if compare(pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])) else 0)
  if cmd == 'compare_results':
    sys.exit(1 if compare_results(sys.argv[2], sys.argv[3]) else 0)
  sys.argv = [f'gradejax.{cmd}'] + sys.argv[2:]
  _profiled(cmd)
