r"""`python -m gradejax.train` (console script `gradejax-train`): trains, then evaluates.

  python -m gradejax.train --config configs/grades.py --workdir runs/grades [--config.steps=500]

The one place that runs both stages: :func:`gradejax.training.train.train`, then (when
``config.evaluate``) :func:`gradejax.evaluation.evaluate.evaluate_workdir` on the same data and
cached features. Training never imports the evaluation, the evaluation reads the run through
:mod:`gradejax.training.runs`.
"""
from __future__ import annotations

import logging
import pathlib
import re
from typing import Any

import ml_collections

from gradejax import logs
from gradejax.evaluation import evaluate
from gradejax.training import train


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path
                       ) -> dict[str, Any]:
  """Trains (resuming from ``WORKDIR/checkpoints`` if any) and, if ``config.evaluate`` and the
  run reached ``config.steps``, writes the verdict; returns the final metrics (with
  ``'verdict'`` when evaluated)."""
  metrics, data, feats = train.train(config, workdir)
  if config.evaluate and 'stopped_at' not in metrics:
    workdir = pathlib.Path(workdir).absolute()
    metrics['verdict'] = evaluate.evaluate_workdir(workdir, config=config, data=data,
                                                   features=feats)
    # The evaluation beside the training curves: eval/* scalars and the verdict text.
    writer = train.Writer(workdir / 'tb')
    writer.evaluation(int(config.steps), metrics['verdict'],
                      evaluate.verdict_text(metrics['verdict']))
    writer.close()
  return metrics


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing that names a wrong ``--config.<key>`` instead of a bare AttributeError."""
  from absl import flags
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:
    msg = str(e)
    keys = [a[len('--config.'):].split('=')[0] for a in argv[1:] if a.startswith('--config.')]
    key = next((k for k in keys if k.split('.')[-1] in msg), msg)
    hint = re.search(r'Did you mean "([^"]+)"', msg)
    raise SystemExit(f'Unknown config key {key!r} (--config.{key}=...): the config file does not '
                     f'define it{f"; did you mean {hint.group(1)!r}?" if hint else "."} See '
                     f'configs/default.py for the valid keys.') from None
  except flags.Error as e:
    raise SystemExit(f'{e}\nUsage: python -m gradejax.train --config configs/<name>.py '
                     f'--workdir DIR [--config.key=value]') from None


def main(argv) -> None:
  del argv
  logs.quiet_libraries()  # orbax's per-checkpoint INFO lines included
  from absl import flags
  f = flags.FLAGS
  logging.getLogger().setLevel(logging.INFO)
  train_and_evaluate(f.config, f.workdir)


def command() -> None:
  """The ``gradejax.train`` command: defines its flags, parses argv, runs :func:`main`."""
  from absl import app, flags
  from ml_collections import config_flags
  config_flags.DEFINE_config_file('config', None, 'a configs/*.py file', lock_config=True)
  flags.DEFINE_string('workdir', None, 'work directory (checkpoints, tb, features, eval)',
                      required=True)
  app.run(main, flags_parser=parse_flags)


if __name__ == '__main__':
  command()
