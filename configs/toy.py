"""Seconds on a CPU: the tests' config (a tiny head, few steps, few permutations)."""
import pathlib
import runpy

import ml_collections

# The sibling default.py by path, so the file loads from any directory (no `configs` package
# on sys.path needed).
default = runpy.run_path(str(pathlib.Path(__file__).with_name('default.py')))


def get_config():
  config = default['get_config']()
  config.data_dir = 'workspace/data/demo'
  config.pivot = 'median'
  config.head = ml_collections.ConfigDict({'widths': (16,), 'dropout': 0.1})
  config.num_views = 1
  config.steps = 60
  config.save_every = 20
  config.warmup_steps = 5
  config.batch_size = 32
  config.cv_repeats = 1
  config.cv_head.steps = 100
  config.num_permutations = 200
  config.permutation_chunk = 100
  config.bootstrap = 200
  return config
