"""Fixed-size batches for compiled functions: pad the last one so a single shape compiles.

Every loop that feeds a jitted function chunk by chunk (embedding chips, permutation chunks,
feature-visualisation units, dataset examples) pads its last chunk by repeating the last row,
runs it, and drops the padded rows' results. These are the two forms of that loop.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


def padded_length(n: int, multiple: int) -> int:
  """The least multiple of ``multiple`` >= ``n``: the rows a padded loop runs."""
  return -(-n // multiple) * multiple


def pad_to_multiple(x, multiple: int):
  """``x [N, ...]`` (N >= 1) with its last row repeated until N is a multiple of ``multiple``.

  A repeated real row (not zeros) keeps padded rows in the data's range, so nothing in them
  can be NaN or change a compiled program's behaviour; their results are discarded. numpy in,
  numpy out; a jax array (also inside jit) in, jax out."""
  xp = jnp if isinstance(x, jax.Array) else np
  x = xp.asarray(x)
  pad = (-len(x)) % multiple
  return xp.concatenate([x, xp.repeat(x[-1:], pad, axis=0)]) if pad else x


def chunk_positions(n: int, chunk: int) -> jax.Array:
  """Positions ``0 .. n-1`` as int32 ``[padded_length(n, chunk) // chunk, chunk]`` chunks for a
  ``lax.scan``/``lax.map`` over them, the last chunk padded by repeating ``n - 1``: take the
  first ``n`` of the flattened results."""
  return pad_to_multiple(jnp.arange(n), chunk).reshape(-1, chunk)


def map_batches(fn: Callable[[np.ndarray], Any], x: np.ndarray, batch_size: int) -> Any:
  """``fn`` over ``x [N, ...]`` in batches of exactly ``batch_size`` rows (the last padded by
  :func:`pad_to_multiple`), each output's leaves moved to the host and concatenated along
  axis 0 with the padding dropped: the same pytree as ``fn``'s output, leaves ``[N, ...]``.
  ``N`` must be >= 1."""
  x = np.asarray(x)
  n = len(x)
  if n == 0:
    raise ValueError('map_batches needs at least one row')
  xp = pad_to_multiple(x, batch_size)
  outs = [jax.tree.map(np.asarray, fn(xp[s:s + batch_size]))
          for s in range(0, len(xp), batch_size)]
  return jax.tree.map(lambda *a: np.concatenate(a)[:n], *outs)
