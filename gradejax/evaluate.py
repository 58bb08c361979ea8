"""`python -m gradejax.evaluate --workdir DIR` (console script `gradejax-evaluate`): evaluates a
trained run again (:func:`gradejax.evaluation.evaluate.evaluate_workdir`) with its
``config.json``, writes ``DIR/eval/verdict.json`` and ``verdict.txt``, the verdict as the run's
TensorBoard HParams metrics, and prints the verdict. Known errors are one line
(:mod:`gradejax.errors`; ``--debug`` for the traceback)."""
from __future__ import annotations

import json
import logging
import pathlib
from typing import Any, Sequence

from absl import flags

from gradejax import errors, logs, progress
from gradejax.evaluation import evaluate
from gradejax.training import config_check, runs


def evaluate_run(workdir: str | pathlib.Path) -> dict[str, Any]:
  """The verdict of the trained run in ``workdir`` (checked config, latest checkpoint step)."""
  from gradejax import train as train_command
  from gradejax.training.tb_writer import Writer
  workdir = pathlib.Path(workdir).expanduser().absolute()
  config = runs.load_config(workdir)
  config_check.validate(config)
  mngr = runs.checkpoint_manager(workdir) if (workdir / 'checkpoints').is_dir() else None
  step = mngr.latest_step() if mngr else None
  if mngr:
    mngr.close()
  if step is None:
    raise errors.UserError(f'{workdir} has no checkpoint yet: run python -m gradejax.train '
                           f'--config ... --workdir {workdir} first (it evaluates at the end).')
  with progress.task(f'evaluate: cross-validation, {config.num_permutations} permutations, '
                     f'{config.bootstrap} bootstrap draws, baselines', total=1):
    v = evaluate.evaluate_workdir(workdir, config=config)
  lg = v.get('ledger') or {}
  if lg.get('message'):
    logging.info('%s', lg['message'])
  writer = Writer(workdir / 'tb')
  writer.evaluation(int(step), v, evaluate.verdict_text(v))
  writer.close()
  errors.write_atomic(workdir / 'eval' / 'evaluated.json',
                      json.dumps(train_command.evaluation_stamp(config, step)))
  return v


def main(argv: Sequence[str]) -> None:
  del argv
  logs.quiet_libraries()
  v = evaluate_run(flags.FLAGS.workdir)
  print(evaluate.verdict_text(v), end='')


def command() -> None:
  """The ``gradejax.evaluate`` command: defines its flags, parses argv, runs :func:`main`."""
  flags.DEFINE_string('workdir', None, 'work directory of a training run', required=True)
  errors.run(main, output_flag='workdir')


if __name__ == '__main__':
  command()
