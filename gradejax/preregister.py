r"""`python -m gradejax.preregister` (console script `gradejax-preregister`): the analysis plan,
written and hashed before the first evaluation (:mod:`gradejax.evaluation.plan`).

  python -m gradejax.preregister --config configs/demo.py [--config.data_dir=DIR] [--plan FILE]
"""
from __future__ import annotations

from typing import Sequence

from gradejax.evaluation.plan import (FIELDS, VERSION, battery_names, compare,  # noqa: F401
                                      default_path, harmonisation_names, plan_hash, plan_of,
                                      preregister, write)


def main(argv: Sequence[str]) -> None:
  del argv
  from absl import flags
  from gradejax import logs
  logs.quiet_libraries()
  f = flags.FLAGS
  path, plan = preregister(f.config, f.plan or None)
  warn = (f' WARNING: the ledger already holds {plan["evaluations_before"]} evaluation(s) of '
          f'this dataset; the verdict will list that as a deviation.'
          if plan['evaluations_before'] else '')
  print(f'Plan written to {path} (sha256 {plan["hash"]}).{warn}')


def command() -> None:
  """The ``gradejax.preregister`` command."""
  from absl import app, flags
  from ml_collections import config_flags
  from gradejax.train import parse_flags
  config_flags.DEFINE_config_file('config', None, 'a configs/*.py file', lock_config=True)
  flags.DEFINE_string('plan', '', 'where to write the plan (default: beside the ledger)')
  app.run(main, flags_parser=parse_flags)


if __name__ == '__main__':
  command()
