"""Seconds on a CPU: the tests' config (a tiny head, few steps, few permutations)."""
from configs import default


def get_config():
  config = default.get_config()
  config.data_dir = 'workspace/data/demo'
  config.pivot = 'median'
  config.head = default.ml_collections.ConfigDict({'widths': (16,), 'dropout': 0.1})
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
