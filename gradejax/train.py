r"""`python -m gradejax.train` (console script `gradejax-train`): trains, then evaluates.

  python -m gradejax.train --config configs/grades.py --workdir runs/grades [--config.steps=500]
      [--restart] [--debug]

The one place that runs both stages: :func:`gradejax.training.train.train`, then (when
``config.evaluate``) :func:`gradejax.evaluation.evaluate.evaluate_workdir` on the same data and
cached features. Training never imports the evaluation, the evaluation reads the run through
:mod:`gradejax.training.runs`.

Reruns: the same command again resumes a killed run, re-evaluates a finished run whose
evaluation is missing or whose evaluation settings changed, and otherwise says there is nothing
to do. A rerun that changes a training field (anything but the evaluation and logging fields of
:data:`gradejax.training.runs.RERUN_SAFE`) is refused with the changed fields; ``--restart``
moves the old run aside (``WORKDIR.prev-<time>``) and trains from scratch.
"""
from __future__ import annotations

import json
import logging
import pathlib
import re
from typing import Any

import ml_collections

from gradejax import errors, logs, progress
from gradejax.evaluation import evaluate, ledger
from gradejax.training import runs, train


def evaluation_stamp(config, step: int) -> dict[str, Any]:
  """What a verdict was computed from: the analysis (the ledger's config hash) and the
  checkpoint step. ``WORKDIR/eval/evaluated.json`` holds it once the verdict is written."""
  return {'analysis': ledger.config_hash(config), 'step': int(step)}


def _read_json(path: pathlib.Path) -> Any:
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None


def up_to_date(config, workdir: pathlib.Path) -> dict[str, Any] | None:
  """The finished run's metrics (with ``'verdict'`` when evaluated) if nothing is left to do:
  trained to ``config.steps`` with its metrics.json, and, when ``config.evaluate``, a verdict
  of this analysis at this step; else None."""
  if not (workdir / 'checkpoints').is_dir():
    return None
  mngr = runs.checkpoint_manager(workdir)
  step = mngr.latest_step()
  mngr.close()
  metrics = _read_json(workdir / 'metrics.json')
  if step is None or step < config.steps or not metrics:
    return None
  if not config.evaluate:
    return metrics
  verdict = _read_json(workdir / 'eval' / 'verdict.json')
  if not verdict or _read_json(workdir / 'eval' / 'evaluated.json') != evaluation_stamp(
      config, step):
    return None
  return dict(metrics, verdict=verdict)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
                       restart: bool = False) -> dict[str, Any]:
  """Trains (resuming from ``WORKDIR/checkpoints`` if any) and, if ``config.evaluate`` and the
  run reached ``config.steps``, writes the verdict; returns the final metrics (with
  ``'verdict'`` when evaluated). Config values, the work directory and the run's identity are
  checked first (:func:`gradejax.training.train.accept`); ``restart`` moves an existing run
  aside and trains from scratch."""
  workdir = train.accept(config, workdir, restart)
  done = up_to_date(config, workdir)
  if done is not None:
    logging.info('Nothing to do: %s is trained to step %d%s with this config.', workdir,
                 config.steps, ' and evaluated (eval/verdict.txt)' if config.evaluate else '')
    return done
  metrics, data, feats = train.train(config, workdir)
  if config.evaluate and 'stopped_at' not in metrics:
    with progress.task(f'evaluate: cross-validation, {config.num_permutations} permutations, '
                       f'{config.bootstrap} bootstrap draws, baselines', total=1):
      v = evaluate.evaluate_workdir(workdir, config=config, data=data, features=feats)
    metrics['verdict'] = v
    lg = v.get('ledger') or {}
    if lg.get('message'):
      logging.info('%s', lg['message'])
    # The evaluation beside the training curves: HParams metrics and the verdict text.
    writer = train.Writer(workdir / 'tb')
    writer.evaluation(int(config.steps), v, evaluate.verdict_text(v))
    writer.close()
    errors.write_atomic(workdir / 'eval' / 'evaluated.json',
                        json.dumps(evaluation_stamp(config, config.steps)))
  return metrics


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing that names a wrong ``--config.<key>`` instead of a bare AttributeError."""
  from absl import flags
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:
    msg = str(e)
    keys = [a[len('--config.'):].split('=')[0] for a in argv[1:] if a.startswith('--config.')]
    # ml_collections' message starts with the unknown key's last part in quotes, then maybe
    # 'Did you mean "steps" instead of "stepz"?' (which names the valid key too).
    bad = (re.search(r'instead of \\*"([^"\\]+)', msg) or
           re.search(r"""\\*['"]([^'"\\]+)\\*['"]""", msg))
    bad = bad.group(1) if bad else ''
    key = next((k for k in keys if k.split('.')[-1] == bad), bad or msg)
    hint = re.search(r'Did you mean "([^"]+)"', msg)
    raise SystemExit(f'error: Unknown config key {key!r} (--config.{key}=...): the config file '
                     f'does not define it{f"; did you mean {hint.group(1)!r}?" if hint else "."}'
                     f' See configs/default.py for the valid keys.') from None
  except flags.Error as e:
    raise SystemExit(f'error: {e}. Usage: python -m gradejax.train --config configs/<name>.py '
                     f'--workdir DIR [--config.key=value]') from None


def main(argv) -> None:
  del argv
  logs.quiet_libraries()  # orbax's per-checkpoint INFO lines included
  from absl import flags
  f = flags.FLAGS
  logging.getLogger().setLevel(logging.INFO)
  if f.config is None:
    errors.fail('--config is required: pass a configs/<name>.py file.')
  train_and_evaluate(f.config, f.workdir, restart=f.restart)


def command() -> None:
  """The ``gradejax.train`` command: defines its flags, parses argv, runs :func:`main`."""
  from absl import flags
  from ml_collections import config_flags
  config_flags.DEFINE_config_file('config', None, 'a configs/*.py file', lock_config=True)
  flags.DEFINE_string('workdir', None, 'work directory (checkpoints, tb, features, eval)',
                      required=True)
  flags.DEFINE_boolean('restart', False, 'The work directory holds a run trained with another '
                       'config: move it aside (WORKDIR.prev-<time>) and train from scratch.')
  errors.run(main, flags_parser=parse_flags, output_flag='workdir')


if __name__ == '__main__':
  command()
