"""The school's question: above vs below the median grade."""
import pathlib
import runpy

# The sibling default.py by path, so the file loads from any directory (no `configs` package
# on sys.path needed).
default = runpy.run_path(str(pathlib.Path(__file__).with_name('default.py')))


def get_config():
  config = default['get_config']()
  config.pivot = 'median'
  return config
