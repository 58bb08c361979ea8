"""The ``prepare`` command (``python -m gradejax.prepare``, console script ``gradejax-prepare``):
workbook -> face chips, manifest and TFDS dataset (:mod:`gradejax.data.prepare`).

  python -m gradejax.prepare --workbook raw/school.xlsx --out data/school-pivot4 \\
      [--pivot 4.0|median] [--bins N] [--folds 5] [--seed 0] [--overwrite] [--check]

Ctrl-C, SIGTERM and SIGHUP end the run within seconds and leave ``--out`` as it was, or
complete if the signal came after the last step (:mod:`gradejax.data.output_folder`).
"""
from __future__ import annotations

import dataclasses
import signal
import sys

from gradejax import options as optlib
from gradejax import progress  # noqa: F401  (defines --progress)
from gradejax.data import prepare as pipeline
from gradejax.data import workbook
from gradejax.options import option


@dataclasses.dataclass(frozen=True)
class Command(pipeline.Options):
  """The ``prepare`` command's options: :class:`Options` plus the paths and the run mode."""
  workbook: str | None = option(None, 'The school workbook (.xlsx), or a CSV (id, grade, file '
                                'name) of photos in --images_dir.', required=True)
  images_dir: str | None = option(None, 'Folder of the photos a CSV --workbook names '
                                  '(default: the CSV\'s folder).')
  workers: int | None = option(None, 'Processes decoding and aligning photos (default: all '
                               'cores); the output is the same for any number.')
  out: str | None = option(None, 'Output folder (created; see --overwrite).')
  check: bool = option(False, 'Dry run: print the row -> photo mapping and every problem, '
                       'without detecting faces or writing anything (--out not needed).')


def _raise_interrupt(signum, frame) -> None:
  raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv) -> None:
  del argv
  from absl import logging
  logging.set_verbosity(logging.WARNING)  # TFDS logs every build step at INFO.
  f = optlib.from_flags(Command)
  o = optlib.narrow(pipeline.Options, f)
  if f.check:
    try:
      print(pipeline.check(f.workbook, o, f.images_dir)[1])
    except (workbook.WorkbookError, ValueError) as e:
      sys.exit(f'error: {e}')
    return
  if not f.out:
    sys.exit('error: --out is required (or pass --check for a dry run).')
  # Ctrl-C semantics even when started with SIGINT ignored (a shell's background job); SIGTERM
  # and SIGHUP unwind the same way, so the half-built folder is removed and --out is kept.
  signal.signal(signal.SIGINT, signal.default_int_handler)
  for name in ('SIGTERM', 'SIGHUP'):
    if hasattr(signal, name):
      signal.signal(getattr(signal, name), _raise_interrupt)
  try:
    summary = pipeline.prepare(f.workbook, f.out, o, progress=pipeline._photo_progress(),
                               workers=f.workers, images_dir=f.images_dir)
  except (workbook.WorkbookError, OSError, ValueError) as e:
    sys.exit(f'error: {e}')
  except KeyboardInterrupt:
    sys.exit(f'interrupted: {f.out} is as it was before this run (or complete, if the '
             'interrupt came after the last step).')
  print(pipeline.format_summary(summary))
  if not summary['used']:
    sys.exit(f'error: no usable rows; see {f.out}/manifest.csv for the reason of each row.')
  print(f'wrote {f.out} ({summary["seconds"]} s)')


def command() -> None:
  """The ``gradejax.prepare`` command: defines its flags, parses argv, runs :func:`main`."""
  from absl import app
  # Flags are defined only when run as a program, so importing prepare() from another module
  # (which may define --seed etc. itself) cannot clash.
  optlib.define_flags(Command)
  app.run(main)


if __name__ == '__main__':
  command()
