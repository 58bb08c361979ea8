"""Shared by the tests that start a child Python process."""
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def child_env(**extra):
  """os.environ for a child process: the checkout first on PYTHONPATH, what was there kept (a
  carried model package, say), and ``extra`` set."""
  path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))
  return dict(os.environ, PYTHONPATH=path, **extra)
