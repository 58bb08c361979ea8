"""The demo (workspace/data/demo): whole run incl. 1000 permutations in < 10 min on a CPU."""
import pathlib
import runpy

# The sibling default.py by path, so the file loads from any directory (no `configs` package
# on sys.path needed).
default = runpy.run_path(str(pathlib.Path(__file__).with_name('default.py')))


def get_config():
  config = default['get_config']()
  config.data_dir = 'workspace/data/demo'
  config.pivot = 'median'
  config.num_views = 2
  config.steps = 600
  config.save_every = 300
  config.cv_repeats = 1
  return config
