"""What every gradejax command does first: keep the libraries' chatter out of the user's log.

orbax logs each checkpoint save/restore at INFO (a dozen lines), tensorflow-datasets each build
step and an OpenCV advice WARNING, jax its backend probing. gradejax's own INFO lines (progress,
steps/s, where files went) stay.
"""
from __future__ import annotations

import logging

_CHATTY = ('/orbax/', '/tensorflow_datasets/', '/jax/_src/xla_bridge', '/etils/')


class _LibraryFilter(logging.Filter):
  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.ERROR:
      return True
    return not any(part in record.pathname for part in _CHATTY)


def quiet_libraries() -> None:
  """Drops non-error records that libraries log through absl (idempotent)."""
  from absl import logging as absl_logging
  handler = absl_logging.get_absl_handler()
  if not any(isinstance(f, _LibraryFilter) for f in handler.filters):
    handler.addFilter(_LibraryFilter())
