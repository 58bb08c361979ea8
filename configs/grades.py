"""The school's question: above vs below the median grade."""
from configs import default


def get_config():
  config = default.get_config()
  config.pivot = 'median'
  return config
