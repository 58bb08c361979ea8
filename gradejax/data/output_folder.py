"""An output folder replaced atomically, that replaces only what it wrote itself.

``OUT`` holds either nothing, the previous complete run, or this complete run, whatever
interrupts a run: everything is built in a hidden sibling ``.NAME.tmp-PID-*`` and swapped into
place at the end (Linux ``renameat2(RENAME_EXCHANGE)``, else two renames with the previous
output parked as ``.NAME.old-PID-*``, which the next run puts back if a SIGKILL fell between
them). Around that:

* a marker file (``MARKER``) lists every file and folder the run wrote; ``overwrite`` replaces
  ``OUT`` only when it holds nothing else (an older output without a marker: only prepare's
  own names), so a folder of someone's files is never deleted;
* an input (the workbook, the photo folder) inside ``OUT`` is never replaced with it;
* a symlinked ``OUT`` is resolved: the link's target is what gets replaced, the link stays;
* a lock file beside ``OUT`` (``.NAME.lock``, flock) makes a second run onto the same ``OUT``
  stop at once with a message; it is removed when the run ends.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import glob
import json
import os
import pathlib
import re
import shutil
import signal
import tempfile
from typing import Callable, Iterable

MARKER = '.gradejax-prepare.json'
# What an output of prepare before the marker existed held (accepted by --overwrite).
LEGACY_NAMES = frozenset({'chips', 'tfds', 'manifest.csv', 'summary.json',
                          'photo_conditions.csv'})


class OutputExistsError(FileExistsError):
  """``--out`` exists and ``--overwrite`` was not given."""


class OutputError(OSError):
  """``--out`` cannot be written (a file in the way, read-only or full disk, a folder prepare did
  not write, another run at work); says what to do."""


def resolve(out: str | os.PathLike) -> pathlib.Path:
  """``out`` as an absolute path with its symlinks resolved (the link's target is written)."""
  return pathlib.Path(out).expanduser().absolute().resolve()


def _inside(path: pathlib.Path, folder: pathlib.Path) -> bool:
  return path == folder or folder in path.parents


def check_output(out: pathlib.Path, overwrite: bool,
                 inputs: Iterable[str | os.PathLike | None] = ()) -> None:
  """Refuses an ``--out`` that cannot work before any long step runs.

  Raises:
    OutputExistsError: ``out`` exists and ``overwrite`` is False.
    OutputError: a file is in the way, ``out`` holds something prepare did not write (it is
      never replaced: ``--overwrite`` replaces only what prepare wrote) or one of ``inputs``,
      or the nearest existing folder above it is not writable.
  """
  for above in [out, *out.parents]:
    if above.exists() or above.is_symlink():
      break
  if above != out and not above.is_dir():
    raise OutputError(f'--out {out}: {above} is a file, not a folder; choose an --out inside a '
                      'folder.')
  if out.exists():
    if not out.is_dir():
      raise OutputError(f'--out {out} is a file, not a folder; remove it or choose another --out.')
    if not overwrite:
      raise OutputExistsError(f'{out} already exists; pass --overwrite to replace it, or choose '
                              'another --out.')
    for given in inputs:
      if given is not None and _inside(resolve(given), out):
        raise OutputError(f'--out {out} holds the input {given}, which --overwrite would delete '
                          'with it; move the input out of --out, or choose another --out.')
    foreign = foreign_entry(out)
    if foreign is not None:
      raise OutputError(f'--out {out} holds {foreign}, which prepare did not write; --overwrite '
                        'replaces only a folder prepare wrote. Move it away, or choose another '
                        '--out.')
    above = out.parent
  if not os.access(above, os.W_OK | os.X_OK):
    raise OutputError(f'--out {out}: cannot write in {above} (read-only or no permission); '
                      'choose another --out.')


def _entries(folder: pathlib.Path) -> list[str]:
  """Every file, link and folder under ``folder`` (relative POSIX paths, links not followed)."""
  out = []
  for root, dirs, files in os.walk(folder):
    rel = pathlib.Path(root).relative_to(folder)
    out += [(rel / n).as_posix() for n in dirs + files]
  return sorted(out)


def foreign_entry(out: pathlib.Path) -> str | None:
  """The first thing in ``out`` that its marker does not list (or, without a marker, that is
  not one of prepare's own names), or None when ``out`` holds only what prepare wrote."""
  try:
    listed = set(json.loads((out / MARKER).read_text(encoding='utf-8'))['written'])
  except (OSError, ValueError, KeyError, TypeError):
    listed = None
  if listed is None:
    names = sorted(p.name for p in out.iterdir())
    if names and not {'manifest.csv', 'summary.json'} & set(names):
      return names[0]
    return next((n for n in names if n not in LEGACY_NAMES), None)
  return next((e for e in _entries(out) if e not in listed and e != MARKER), None)


def write_marker(folder: pathlib.Path) -> None:
  """Lists everything in ``folder`` in its marker file (written last)."""
  (folder / MARKER).write_text(json.dumps({'written_by': 'gradejax prepare',
                                           'written': _entries(folder)}, indent=0) + '\n',
                               encoding='utf-8')


class Lock:
  """``.NAME.lock`` beside ``out``, held (flock) while a run writes ``out``."""

  def __init__(self, out: pathlib.Path):
    self.path = out.parent / f'.{out.name}.lock'
    self.fd: int | None = None

  def acquire(self) -> 'Lock':
    while True:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError as e:
        holder = os.read(fd, 32).decode(errors='replace').strip() or '?'
        os.close(fd)
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
          raise
        raise OutputError(f'--out {self.path.parent / self.path.name[1:-5]}: another prepare '
                          f'(pid {holder}) is writing it now; wait for it to finish, or choose '
                          'another --out.') from None
      try:  # The file may have been removed by the run that held it: lock the one in place.
        same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
      except FileNotFoundError:
        same = False
      if same:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self
      os.close(fd)

  def release(self) -> None:
    if self.fd is not None:
      try:
        self.path.unlink()
      except FileNotFoundError:
        pass
      os.close(self.fd)
      self.fd = None


_LEFTOVER = r'\.{name}\.(tmp|old)-(?:(\d+)-)?[A-Za-z0-9_]+'


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _remove(p: pathlib.Path) -> None:
  if p.is_symlink() or not p.is_dir():
    p.unlink(missing_ok=True)
  else:
    shutil.rmtree(p, ignore_errors=True)


def clean_leftovers(out: pathlib.Path) -> list[str]:
  """Removes what an interrupted run left beside ``out``; restores ``out`` if it was moved away.

  Names carry the writer's pid (``.NAME.tmp-PID-xxxx`` is a run being built, ``.NAME.old-PID-xxxx``
  the previous output while the new one is moved in); folders of a process still running are
  left alone. Returns one line per thing done (or that could not be done), for the log.
  """
  done = []
  if not out.parent.is_dir():
    return done
  pattern = re.compile(_LEFTOVER.format(name=re.escape(out.name)))
  found = []
  for p in out.parent.iterdir():
    m = pattern.fullmatch(p.name)
    if m and (p.is_dir() or p.is_symlink()) and not (
        m.group(2) and int(m.group(2)) != os.getpid() and _alive(int(m.group(2)))):
      found.append((m.group(1), p))
  olds = sorted((p for kind, p in found if kind == 'old' and not p.is_symlink()),
                key=lambda p: p.stat().st_mtime)
  if olds and not out.exists():
    olds[-1].rename(out)  # The interrupted swap had moved the previous output away.
    done.append(f'restored {out} from {olds[-1].name} (an interrupted run had moved it away)')
  for kind, p in found:
    if p.exists() or p.is_symlink():
      _remove(p)
      gone = not (p.exists() or p.is_symlink())
      done.append(f'removed {p.name}, left by an interrupted run' if gone else
                  f'could not remove {p.name} (left by an interrupted run); remove it yourself')
  return done


def _exchange(a: pathlib.Path, b: pathlib.Path) -> bool:
  """Swaps two paths atomically with Linux renameat2(RENAME_EXCHANGE); False if unsupported."""
  try:
    renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
  except (OSError, AttributeError):
    return False
  at_fdcwd, rename_exchange = -100, 2
  return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


_SIGNALS = tuple(getattr(signal, n) for n in ('SIGINT', 'SIGTERM', 'SIGHUP') if hasattr(signal, n))


def swap_in(tmp: pathlib.Path, out: pathlib.Path) -> pathlib.Path | None:
  """Moves the finished ``tmp`` to ``out``; returns the folder now holding the old run, if any.

  Interrupt signals are held back for the renames, so Ctrl-C cannot fall between them (it
  takes effect right after); a SIGKILL or power cut there leaves ``.NAME.old-*``, which the next
  run puts back (:func:`clean_leftovers`). At no moment do ``out``'s contents mix two runs, and
  a failing rename leaves the previous output in place.
  """
  masked = hasattr(signal, 'pthread_sigmask')
  if masked:
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
  try:
    if not out.exists():
      tmp.rename(out)
      return None
    if _exchange(tmp, out):  # one atomic swap; tmp now holds the old run
      return tmp
    return _swap_by_renames(tmp, out)
  finally:
    if masked:
      signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _swap_by_renames(tmp: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
  """Where renameat2 is missing: ``out`` -> ``.NAME.old-PID-*``, then ``tmp`` -> ``out`` (the
  old output goes back if the second rename fails)."""
  old = pathlib.Path(tempfile.mkdtemp(prefix=f'.{out.name}.old-{os.getpid()}-', dir=out.parent))
  old.rmdir()
  out.rename(old)
  try:
    tmp.rename(out)
  except BaseException:
    old.rename(out)
    raise
  return old


def build(out: pathlib.Path, write: Callable[[pathlib.Path], None], overwrite: bool,
          inputs: Iterable[str | os.PathLike | None] = ()) -> None:
  """Runs ``write(tmp)`` in a fresh hidden sibling of ``out``, lists it in its marker and swaps
  it in (``out`` must have passed :func:`check_output`; it is checked again right before).

  Raises:
    OutputExistsError / OutputError: as :func:`check_output`, or writing failed (then the
      previous output is untouched and the half-built folder removed).
  """
  out.parent.mkdir(parents=True, exist_ok=True)
  clean_leftovers(out)
  old = tmp = None
  try:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f'.{out.name}.tmp-{os.getpid()}-', dir=out.parent))
    write(tmp)
    write_marker(tmp)
    if out.exists():  # something may have appeared while the run worked
      check_output(out, overwrite, inputs)
    old = swap_in(tmp, out)
  except BaseException as e:
    if tmp is not None:
      _remove(tmp)
    # An interrupt may also have come between mkdtemp() and here: this process's other
    # half-built folders go too.
    for p in out.parent.glob(f'.{glob.escape(out.name)}.tmp-{os.getpid()}-*'):
      _remove(p)
    if isinstance(e, OSError) and not isinstance(e, (OutputError, FileExistsError)):
      kept = 'the previous output is untouched' if out.exists() else 'nothing was written'
      where = f' ({e.filename})' if e.filename else ''
      raise OutputError(f'--out {out}: writing failed: {e.strerror or e}{where}; {kept}. '
                        'Free some space, or choose another --out.') from e
    raise
  if old is not None:
    _remove(old)
