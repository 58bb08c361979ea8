"""Several processes (one per host) as one JAX program: start-up, the global mesh, gathering.

Single-process runs need none of this: every function here is then a no-op or the obvious
one-process answer, so callers use it unconditionally.

Start-up (:func:`initialize`), first match wins:

* explicit arguments (the commands' ``--coordinator``, ``--num_processes``, ``--process_id``);
* ``GRADEJAX_COORDINATOR=host:port`` with ``GRADEJAX_NUM_PROCESSES`` and ``GRADEJAX_PROCESS_ID``;
* ``GRADEJAX_JAX_INIT=1``: ``jax.distributed.initialize()`` with no arguments, which finds the
  cluster itself on Cloud TPU, SLURM, Open MPI and Kubernetes (big_vision's ``BV_JAX_INIT``
  switch);
* nothing set: one process.

After it, ``jax.devices()`` lists every process's devices; a :func:`global_mesh` over them lets
one jitted program run on all hosts, each process feeding and holding only its own shards.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gradejax import options
from gradejax.options import option

ENV_COORDINATOR = 'GRADEJAX_COORDINATOR'
ENV_NUM_PROCESSES = 'GRADEJAX_NUM_PROCESSES'
ENV_PROCESS_ID = 'GRADEJAX_PROCESS_ID'
ENV_AUTO = 'GRADEJAX_JAX_INIT'

_started = [False]


@dataclasses.dataclass(frozen=True)
class HostOptions:
  """The commands' multi-host flags (gradejax.options), read by :func:`initialize_from_flags`."""
  coordinator: str | None = option(None, f'host:port of process 0 for a multi-host run (or '
                                   f'${ENV_COORDINATOR}; ${ENV_AUTO}=1 lets JAX find the cluster)')
  num_processes: int | None = option(None, f'processes in a multi-host run (or '
                                     f'${ENV_NUM_PROCESSES})')
  process_id: int | None = option(None, f'this process, 0..num_processes-1 (or '
                                  f'${ENV_PROCESS_ID})')


def define_flags() -> None:
  options.define_flags(HostOptions)


def initialize_from_flags() -> bool:
  o = options.from_flags(HostOptions)
  return initialize(o.coordinator, o.num_processes, o.process_id)


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> bool:
  """Joins the multi-process run described by the arguments or the environment (see the
  module docstring); True if this is one. Call it before anything else touches JAX. Calling
  it again is a no-op."""
  if _started[0]:
    return True
  env = os.environ
  coordinator = coordinator or env.get(ENV_COORDINATOR) or None
  if coordinator:
    try:
      num_processes = int(num_processes if num_processes is not None else env[ENV_NUM_PROCESSES])
      process_id = int(process_id if process_id is not None else env[ENV_PROCESS_ID])
    except (KeyError, ValueError):
      raise ValueError(f'a multi-host run with coordinator {coordinator} needs --num_processes '
                       f'and --process_id (or ${ENV_NUM_PROCESSES} and ${ENV_PROCESS_ID}) as '
                       'integers') from None
    if not 0 <= process_id < num_processes:
      raise ValueError(f'--process_id must lie in 0..{num_processes - 1}; got {process_id}')
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
  elif env.get(ENV_AUTO, '').strip().lower() not in ('', '0', 'false', 'no'):
    try:
      jax.distributed.initialize()  # JAX finds the cluster (jax/_src/clusters)
    except ValueError as e:  # nothing detected: JAX asks for a coordinator address
      raise RuntimeError(
          f'${ENV_AUTO}={env[ENV_AUTO]}: jax.distributed.initialize() found no cluster to join '
          f'(it detects Cloud TPU, SLURM (SLURM_JOB_ID, SLURM_STEP_NODELIST, SLURM_NTASKS, '
          f'SLURM_PROCID, SLURM_LOCALID), Open MPI (OMPI_MCA_orte_hnp_uri, ...) and '
          f'Kubernetes; JAX said: {e}). Outside such a job set ${ENV_COORDINATOR}=host:port, '
          f'${ENV_NUM_PROCESSES} and ${ENV_PROCESS_ID} (or --coordinator, --num_processes, '
          f'--process_id) instead, or unset ${ENV_AUTO}.') from e
  else:
    return False
  _started[0] = True
  return True


def is_main() -> bool:
  """True in process 0, the one that writes files and prints."""
  return jax.process_index() == 0


def global_mesh(axis: str = 'batch', devices=None) -> Mesh:
  """A 1-D mesh over every process's devices (``jax.devices()``) or the ``devices`` given."""
  return Mesh(np.array(list(jax.devices() if devices is None else devices)), (axis,))


def put(x: Any, sharding: NamedSharding) -> jax.Array:
  """A host value that every process holds in full (the same bytes everywhere, e.g. derived
  from the same seed) -> one global array with ``sharding``; each process places only the
  shards on its own devices. Works on pytrees of arrays."""
  def one(a):
    a = np.asarray(a)
    return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])
  return jax.tree.map(one, x)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def gather(x: Any) -> Any:
  """A (possibly global) array -> the full value on every process: itself when this process
  holds all of it (one process), else a numpy copy assembled from every process's shards.
  Every process must call it (it is a collective). Works on pytrees."""
  def one(a):
    if not isinstance(a, jax.Array) or a.is_fully_addressable:
      return a
    return np.asarray(multihost_utils.process_allgather(a, tiled=True))
  return jax.tree.map(one, x)


def split(total: int, process: int | None = None, count: int | None = None) -> slice:
  """This process's contiguous share of ``total`` items (the first ``total % processes`` get
  one more), grain's even split over ``grain.sharding.ShardByJaxProcess``: the shares,
  concatenated in process order, are the items in order. ``process``/``count`` override
  this process's index and the process count."""
  from grain import sharding  # grain's view of the JAX processes, as its data loaders shard
  shard = sharding.ShardByJaxProcess(drop_remainder=False)
  p = shard.shard_index if process is None else process
  per, extra = divmod(total, shard.shard_count if count is None else count)
  start = per * p + min(p, extra)
  return slice(start, start + per + (p < extra))


def gather_rows(x: np.ndarray, total: int) -> np.ndarray:
  """Every process's rows ``x`` (a contiguous share of ``total`` items on the first axis, in
  process order: its :func:`split`, or whole batches as :func:`batch_split` gives) -> all
  ``total`` rows in order, on every process (a collective; shorter shares are padded for
  the exchange)."""
  x = np.asarray(x)
  if jax.process_count() == 1:
    return x
  sizes = np.asarray(multihost_utils.process_allgather(np.int64(len(x)))).ravel()
  if int(sizes.sum()) != total:
    raise ValueError(f'gather_rows: the processes hold {sizes.tolist()} rows, not {total}')
  per = int(sizes.max())
  padded = np.concatenate([x, np.zeros((per - len(x),) + x.shape[1:], x.dtype)])
  every = np.asarray(multihost_utils.process_allgather(padded))  # [processes, per, ...]
  return np.concatenate([every[p, :k] for p, k in enumerate(sizes)])


def batch_split(total: int, batch: int, process: int | None = None, count: int | None = None
                ) -> slice:
  """This process's rows when ``total`` items are processed ``batch`` at a time: whole
  batches are split (:func:`split` of the batches), so every batch holds exactly the items
  it holds in one process -- the same shapes, the same per-batch PRNG draws, the same
  numbers."""
  calls = split(-(-total // batch), process, count)
  return slice(min(calls.start * batch, total), min(calls.stop * batch, total))


def broadcast(x: Any) -> Any:
  """Process 0's value of ``x`` (a numpy scalar or array) on every process (a collective)."""
  if jax.process_count() == 1:
    return x
  return np.asarray(multihost_utils.broadcast_one_to_all(np.asarray(x)))


def sync(name: str) -> None:
  """Waits until every process reaches this point (no-op in one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)
