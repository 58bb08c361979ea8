"""One line for a user's mistake, a traceback for ours: the commands' top level.

A command's absl ``main`` runs through :func:`run` (one call instead of ``app.run``)::

    errors.run(main, flags_parser=parse_flags, output_flag='workdir')

Known errors become ``error: <what went wrong and what to do>`` on stderr and exit status 1:
:class:`UserError` (raised by gradejax where it detects a user's mistake: a bad config value,
a rerun with another config), files or folders that are missing, read-only or in the way
(``OSError`` with ENOENT / EACCES / EROFS / ENOTDIR / EEXIST / EISDIR), and a full disk
(ENOSPC, also when it happens in a writer thread of TensorBoard or orbax): the line names the
path and what to free. Anything else keeps its traceback: that is a bug to report.
``--debug`` (or ``GRADEJAX_DEBUG=1``) shows the traceback of the known errors as well.

:func:`write_atomic` replaces a file through a temporary file in the same folder, so a crash or
a full disk leaves the old content or the new one, never a truncated file.
"""
from __future__ import annotations

import errno
import os
import pathlib
import shutil
import sys
import tempfile
import threading
from typing import Callable

from absl import flags

if 'debug' not in flags.FLAGS:
  flags.DEFINE_boolean('debug', False, 'Show the traceback of known errors (bad values, missing '
                       'files, full disk) instead of their one-line message.')


class UserError(Exception):
  """A mistake of the user's, with a message of one line that says what to do."""


class ConfigError(UserError):
  """A config value that is of the wrong type, out of range or not one of the choices."""


class RunConflict(UserError):
  """A work directory that holds another run than the one asked for."""


class DataError(UserError):
  """A dataset that is missing, empty or unusable."""


class OptionError(UserError, ValueError):
  """A command option (flag) with a value that cannot be used; a ValueError for library callers."""


def _chain(exc: BaseException):
  seen = set()
  while exc is not None and id(exc) not in seen:
    seen.add(id(exc))
    yield exc
    exc = exc.__cause__ or exc.__context__


def _free(path: str | None) -> str:
  p = pathlib.Path(path) if path else None
  while p is not None and not p.exists() and p != p.parent:
    p = p.parent
  if p is None:
    return ''
  try:
    return f' ({shutil.disk_usage(p).free / 2**20:.0f} MiB free there)'
  except OSError:
    return ''


def describe(exc: BaseException, output: str | None = None) -> str | None:
  """The one-line message of a known error, or None for an unexpected one (a bug).

  ``output``: the command's output folder, named when a full disk does not say which file.
  """
  for e in _chain(exc):
    if isinstance(e, UserError):
      return ' '.join(str(e).split('\n')[0].split()) or type(e).__name__
  for e in _chain(exc):
    text = str(e)
    if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or 'No space left on device' in text:
      path = getattr(e, 'filename', None) or output
      where = f' while writing {path}' if path else ''
      return (f'No space left on device{where}{_free(path)}: free space on that disk (old runs\' '
              f'features/ and checkpoints/ are the largest files) or pass another --workdir, '
              f'then rerun; a training run resumes from its last complete checkpoint.')
  for e in _chain(exc):
    if not isinstance(e, OSError) or e.errno is None:
      continue
    path = e.filename or output or ''
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
      return (f'Cannot write {path} ({e.strerror}): choose a writable folder (e.g. another '
              f'--workdir) or change its permissions.')
    if e.errno in (errno.ENOTDIR, errno.EEXIST) and pathlib.Path(path).is_file():
      return f'{path} is a file, not a folder: pass a folder path (a new one is created).'
    if e.errno == errno.ENOTDIR:
      return f'{path}: a part of this path is a file, not a folder: pass a folder path.'
    if e.errno == errno.EISDIR:
      return f'{path} is a folder, not a file: pass the file inside it.'
    if e.errno == errno.ENOENT:
      return f'{path}: no such file or folder ({e.strerror}); check the path.'
  for e in _chain(exc):
    if isinstance(e, FileNotFoundError) and e.errno is None and str(e):
      return ' '.join(str(e).split())  # gradejax's own "run X first" messages
  for e in _chain(exc):
    line = _config_load_error(e)
    if line:
      return line
  return None


def debug(argv: list[str] | None = None) -> bool:
  """Whether known errors keep their traceback (``--debug`` or ``GRADEJAX_DEBUG=1``)."""
  if os.environ.get('GRADEJAX_DEBUG', '').strip().lower() in ('1', 'true', 'yes', 'on'):
    return True
  if flags.FLAGS.is_parsed():
    return bool(flags.FLAGS.debug)
  return any(a in ('--debug', '-debug') for a in (argv or sys.argv))


def fail(line: str) -> None:
  """Prints ``error: line`` to stderr and exits with status 1."""
  print(f'error: {line}', file=sys.stderr, flush=True)
  raise SystemExit(1)


def _output(output_flag: str | None) -> str | None:
  if output_flag and output_flag in flags.FLAGS:
    try:
      return flags.FLAGS[output_flag].value
    except Exception:  # pragma: no cover - flags not parsed yet
      return None
  return None


def guard(fn: Callable, output_flag: str | None = None, output: str | None = None) -> Callable:
  """``fn`` whose known errors (:func:`describe`) exit with one line instead of a traceback;
  a resource error in another thread (TensorBoard's or orbax's writer) is held back and
  reported the same way when ``fn`` returns. The output folder a full disk names is the flag
  ``output_flag``'s value, else ``output``."""
  def wrapped(*args, **kwargs):
    held: list[BaseException] = []
    previous = threading.excepthook

    def hook(a):
      if describe(a.exc_value) is not None and not debug():
        held.append(a.exc_value)  # reported once, below, instead of a thread traceback
      else:
        previous(a)

    threading.excepthook = hook
    try:
      result = fn(*args, **kwargs)
    except Exception as e:
      line = describe(e, _output(output_flag) or output)
      if line is None or debug():
        raise
      fail(line)
    finally:
      threading.excepthook = previous
    if held:
      fail(describe(held[0], _output(output_flag) or output))
    return result
  return wrapped


def run(main: Callable, *, flags_parser: Callable | None = None,
        output_flag: str | None = None) -> None:
  """``absl.app.run(main)`` with known errors as one line (flag parsing included, e.g. a
  missing config file)."""
  from absl import app

  def parse(argv):
    try:
      return flags_parser(argv) if flags_parser else flags.FLAGS(argv)
    except flags.Error as e:
      if debug(argv):
        raise
      fail(f'{e} (see --help)')
    except Exception as e:
      line = describe(e)
      if line is None or debug(argv):
        raise
      fail(line)

  app.run(guard(main, output_flag), flags_parser=parse)


def _config_load_error(e: BaseException) -> str | None:
  # ml_collections' message for a config file it could not load: "Failed loading config file
  # ... Attempted [Relative path]: configs/x.py [Errno 2] No such file or directory: ..."
  text = ' '.join(str(e).split())
  if 'Failed loading config file' in text or 'Configuration is not available' in text:
    reason = text.split('Attempted', 1)[-1].split(':', 1)[-1].strip()
    return (f'Could not load the --config file: {reason}. Pass an existing configs/<name>.py '
            f'(relative to the current folder, or absolute).')
  return None


def write_atomic(path: str | pathlib.Path, data: str | bytes) -> pathlib.Path:
  """Writes ``data`` to ``path`` through a temporary file in the same folder and
  ``os.replace``: readers see the old file or the whole new one, never a part."""
  path = pathlib.Path(path)
  fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
  try:
    with os.fdopen(fd, 'wb') as f:
      f.write(data.encode('utf-8') if isinstance(data, str) else data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise
  return path
