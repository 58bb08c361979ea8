"""The demo (workspace/data/demo): whole run incl. 1000 permutations in < 10 min on a CPU."""
from configs import default


def get_config():
  config = default.get_config()
  config.data_dir = 'workspace/data/demo'
  config.pivot = 'median'
  config.num_views = 2
  config.steps = 600
  config.save_every = 300
  config.cv_repeats = 1
  return config
