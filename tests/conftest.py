"""Session fixtures shared by tests/test_train.py and tests/test_reruns.py (tests/run_fixtures.py):
the prepared folder, the toy run trained on it, and a short evaluated run."""
import shutil

import pytest

from run_fixtures import config_for, make_data_dir, tiny_evaluation


@pytest.fixture(scope='session')
def train_data_dir(tmp_path_factory):
  return make_data_dir(tmp_path_factory.mktemp('train_data'))


@pytest.fixture(scope='session')
def trained_run(train_data_dir, tmp_path_factory):
  """``(workdir, metrics)`` of the toy config (60 steps, not evaluated)."""
  from gradejax.train import train_and_evaluate
  workdir = tmp_path_factory.mktemp('full')
  return workdir, train_and_evaluate(config_for(train_data_dir), str(workdir))


@pytest.fixture(scope='session')
def evaluated_run(train_data_dir, trained_run, tmp_path_factory):
  """``(workdir, config, metrics)`` of a 10-step run with a tiny evaluation (the trained run's
  cached features reused)."""
  from gradejax.train import train_and_evaluate
  workdir = tmp_path_factory.mktemp('evaluated')
  shutil.copytree(trained_run[0] / 'features', workdir / 'features')
  c = tiny_evaluation(config_for(train_data_dir, steps=10))
  c.ledger = str(workdir.parent / 'evaluated_ledger.jsonl')
  return workdir, c, train_and_evaluate(c, str(workdir))
