"""Decoding, face detection and alignment of many photos in a process pool, in input order.

One photo is independent of every other, so ``prepare`` maps :func:`process_photo` over the
photos with an order-preserving ``Pool.imap``: the results (and hence the chips, the manifest
and everything downstream) are those of a loop in one process, bit for bit, whatever the number
of workers. Each worker loads dlib's models once (the pool's initializer), not once per photo.

Workers are started with the 'spawn' context: a fresh interpreter, no copy of the parent's
state (dlib objects and open zip files do not survive a fork well, and spawn behaves the same
on Linux and macOS). Workers ignore SIGINT; the parent catches Ctrl-C, terminates the pool and
re-raises, so an interrupt leaves no orphan processes and no half-written output. As with any
spawn pool, a script that calls this with ``workers > 1`` needs the usual
``if __name__ == '__main__':`` guard (the commands have it).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import multiprocessing
import os
import pathlib
import signal
import threading
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence, Union

import numpy as np

from gradejax.data import faces, images, photo_quality

# A photo to process: its file's bytes, or the path of the file (read by the worker, so a
# folder of a million photos is never held in the parent's memory at once).
Source = Union[bytes, str, os.PathLike]
Progress = Callable[[int, int], None]


class Result(NamedTuple):
  """What :func:`process_photo` found in one photo: ``reason`` is None exactly when a chip was
  made (then the other fields are set, as :class:`gradejax.data.faces.Face` gives them)."""
  reason: str | None
  chip: np.ndarray | None = None  # uint8 [S, S, 3]
  box: tuple[float, float, float, float] | None = None
  score: float | None = None
  affine: np.ndarray | None = None  # float64 [2, 3] photo -> chip
  centre_crop: bool = False
  # The photo-condition features of the confound baselines (photo_quality.row_conditions),
  # when the job asks for them: computed here, from the original bytes, beside the chip.
  conditions: dict | None = None
  # SHA-1 of the decoded pixels (shape included), set whenever the photo decoded: prepare skips
  # rows whose photos are the same picture.
  digest: str | None = None


@dataclasses.dataclass(frozen=True)
class Job:
  """The per-photo settings, the same for every photo of a run (sent once per worker)."""
  face_options: faces.FaceOptions
  min_side: int = images.DEFAULT_MIN_SIDE
  conditions: bool = False  # also compute photo_quality.row_conditions (68 landmarks, pose, ...)


def default_workers() -> int:
  """All cores this process may run on (the CPU affinity mask, not the machine's count)."""
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except AttributeError:  # not Linux
    return max(1, os.cpu_count() or 1)


def read_source(source: Source) -> tuple[bytes | None, str | None]:
  """A photo's bytes (a workbook's embedded picture, or a file read now), or why not."""
  if isinstance(source, bytes):
    return source, None
  path = pathlib.Path(source)
  try:
    return path.read_bytes(), None
  except FileNotFoundError:
    return None, f'image_missing: no file {path.name!r} in {path.parent}'
  except OSError as e:
    return None, f'image_unreadable: cannot read {path} ({e.strerror or e})'


def pixel_digest(image: np.ndarray) -> str:
  """SHA-1 of a decoded photo (uint8 [H, W, 3]): equal exactly for the same pixels, whatever
  the file's format, name or metadata."""
  h = hashlib.sha1(repr(image.shape).encode())
  h.update(np.ascontiguousarray(image).tobytes())
  return h.hexdigest()


def process_photo(models: faces.Models, source: Source, job: Job, landmarks68=None) -> Result:
  """One photo: decode -> detect -> align, the policies of ``job``. Never raises for a bad
  photo: the reason string says what was wrong (``code: detail``). ``landmarks68``: dlib's
  68-point predictor, for ``job.conditions``."""
  data, reason = read_source(source)
  if reason is not None:
    return Result(reason)
  image, reason = images.decode_photo(data, min_side=job.min_side)
  if reason is not None:
    return Result(reason)
  digest = pixel_digest(image)
  face, reason = faces.find_face(models, image, job.face_options)
  if reason is not None:
    return Result(reason, digest=digest)
  conditions = (photo_quality.row_conditions(data, image, face, landmarks68,
                                             job.face_options.chip_size)
                if job.conditions else None)
  return Result(None, face.chip, face.box, face.score, face.affine, face.centre_crop, conditions,
                digest)


def _load(job: Job):
  """The dlib models a worker needs for ``job``: (face models, 68-point predictor or None)."""
  return (faces.load_models(job.face_options.detector),
          photo_quality.load_landmarks68() if job.conditions else None)


# Per worker process: set by the initializer, read by the task function.
_worker: dict = {}


def _init_worker(job: Job) -> None:
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C for everyone
  _worker['models'], _worker['landmarks68'] = _load(job)
  _worker['job'] = job


def _task(source: Source) -> Result:
  return process_photo(_worker['models'], source, _worker['job'], _worker['landmarks68'])


def map_photos(sources: Sequence[Source], job: Job, workers: int | None = None,
               progress: Progress | None = None, chunksize: int | None = None
               ) -> Iterator[Result]:
  """Yields :func:`process_photo`'s result for each source, in the order of ``sources``.

  ``workers`` = 1 runs in this process (no pool); None uses :func:`default_workers`. At most
  ``len(sources)`` workers are started. ``chunksize`` photos travel to a worker per message
  (default: enough for ~8 messages per worker, at most 16, so the progress bar moves and the
  last chunks balance). ``progress(done, total)`` is called after each photo.

  The pool is closed and joined before the last result is yielded, so a consumer that stops
  right after it (``zip``) leaves no worker behind; one that stops earlier should use
  :func:`mapped`, which closes the pool when its block ends.
  """
  total = len(sources)
  workers = default_workers() if workers is None else workers
  if workers < 1:
    raise ValueError(f'--workers must be >= 1, got {workers}')
  workers = min(workers, total)
  if workers <= 1:
    models, lm68 = _load(job) if total else (None, None)
    for i, s in enumerate(sources):
      r = process_photo(models, s, job, lm68)
      if progress:
        progress(i + 1, total)
      yield r
    return
  if chunksize is None:
    chunksize = max(1, min(16, total // (8 * workers)))
  pool = multiprocessing.get_context('spawn').Pool(workers, _init_worker, (job,))
  try:
    for i, r in enumerate(pool.imap(_task, sources, chunksize)):
      if i + 1 == total:
        pool.close()  # every result is in: the workers exit now, not when the consumer is done
        pool.join()
      if progress:
        progress(i + 1, total)
      yield r
  except BaseException:  # KeyboardInterrupt, or the consumer stopped early (GeneratorExit)
    stop(pool)
    raise
  pool.join()


def stop(pool, wait: float = 5.0) -> None:
  """Ends ``pool`` now, with no worker left behind. ``Pool.terminate`` kills the workers and
  then joins its feeder thread, which can block for ever on a pipe that dead workers left full
  (photos and chips are tens of KB, a pipe holds 64 KB): seen as a rare hang of an interrupted
  run. So terminate runs in a daemon thread for ``wait`` seconds; any worker still alive after
  that is killed, and a stuck feeder thread is abandoned with the pool."""
  t = threading.Thread(target=pool.terminate, daemon=True)
  t.start()
  t.join(wait)
  if t.is_alive():
    for p in list(getattr(pool, '_pool', ())):  # the workers (Pool keeps no public list)
      if p.exitcode is None:
        p.kill()
      p.join(wait)


@contextlib.contextmanager
def mapped(sources: Sequence[Source], job: Job, workers: int | None = None,
           progress: Progress | None = None) -> Iterator[Iterator[Result]]:
  """:func:`map_photos` whose pool is terminated and joined when the ``with`` block ends,
  however it ends (an interrupt, an error, or the consumer stopping early)."""
  results = map_photos(sources, job, workers, progress)
  try:
    yield results
  finally:
    results.close()


def photo_source(photo) -> Source:
  """What to send a worker for a table row's photo: its file path when it has one (a folder
  input), else its bytes (a workbook's embedded picture)."""
  path = getattr(photo, 'path', None)
  return str(path) if path is not None else photo.data


def run_all(sources: Iterable[Source], job: Job, workers: int | None = None,
            progress: Progress | None = None) -> list[Result]:
  """:func:`map_photos` collected into a list."""
  return list(map_photos(list(sources), job, workers, progress))
