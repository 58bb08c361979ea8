"""The frozen face feature extractor: load dlib's weights into :class:`FaceResNet`, embed chips.

``load_face_resnet`` parses the .dat once and caches the converted params as ``.npz`` keyed by
the file's sha256 (``$GRADEJAX_CACHE`` or ``~/.cache/gradejax``); ``embed`` runs the jitted
network over any number of chips with one compiled shape; ``freeze_partition`` / ``merge`` split
the params so a trainer can keep the frozen part out of its optimiser.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import pathlib
import tempfile
import zipfile
from typing import Any, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from gradejax.nets import dlib_format, facenet
from gradejax import batching, paths

Params = dict[str, Any]
CACHE_FORMAT = 1  # bump when the conversion changes, so stale caches are rebuilt
_MEANS_KEY = '__input_means__'
_FORMAT_KEY = '__cache_format__'


def default_cache_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get('GRADEJAX_CACHE') or pathlib.Path.home() / '.cache/gradejax')


def file_sha256(path: str | os.PathLike) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      h.update(chunk)
  return h.hexdigest()


def cache_path(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None
               ) -> pathlib.Path:
  """Where the converted params of the .dat at ``path`` are cached."""
  cache_dir = pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir()
  return cache_dir / f'face_resnet_{file_sha256(path)}.npz'


def convert(net: dlib_format.DlibNet) -> Params:
  """dlib layers (checked by ``read_face_resnet``) -> FaceResNet params (HWIO kernels)."""
  convs = iter(l.params for l in net.layers if l.kind == 'con')
  affines = iter(l.params for l in net.layers if l.kind == 'affine')

  def conv():
    p = next(convs)  # filters [O, I, kh, kw] -> HWIO
    return {'kernel': np.ascontiguousarray(p['filters'].transpose(2, 3, 1, 0)),
            'bias': np.asarray(p['biases'])}

  def affine():
    p = next(affines)
    return {'scale': np.asarray(p['gamma']), 'bias': np.asarray(p['beta'])}

  params: Params = {'stem': {'conv': conv(), 'affine': affine()}}
  for name, _, blocks, _ in dlib_format.FACE_RESNET_LEVELS:
    params[name] = {f'block{b}': {'conv1': conv(), 'affine1': affine(), 'conv2': conv(),
                                  'affine2': affine()} for b in range(blocks)}
  fc = next(l for l in net.layers if l.kind == 'fc')
  params['fc'] = {'kernel': np.asarray(fc.params['weights'])}
  return params


def _read_cache(file: pathlib.Path) -> tuple[Params, tuple[float, ...]] | None:
  try:
    with np.load(file) as z:
      if int(z[_FORMAT_KEY]) != CACHE_FORMAT:
        return None
      means = tuple(float(v) for v in z[_MEANS_KEY])
      flat = {k: z[k] for k in z.files if not k.startswith('__')}
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
    logging.warning('Ignoring unreadable face ResNet cache %s (%s); rebuilding it.', file, e)
    return None
  return traverse_util.unflatten_dict(flat, sep='/'), means


def _write_cache(file: pathlib.Path, params: Params, means: tuple[float, ...]) -> None:
  flat = traverse_util.flatten_dict(params, sep='/')
  try:
    file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=file.parent, suffix='.tmp.npz', delete=False) as f:
      np.savez(f, **flat, **{_MEANS_KEY: np.asarray(means), _FORMAT_KEY: CACHE_FORMAT})
    os.replace(f.name, file)
  except OSError as e:
    logging.warning('Could not cache the converted face ResNet at %s (%s); it will be '
                    're-parsed next time. Set GRADEJAX_CACHE to a writable folder.', file, e)


def load_face_resnet(path: str | os.PathLike | None = None,
                     cache_dir: str | os.PathLike | None = None,
                     precision: Any = None) -> tuple[facenet.FaceResNet, dict[str, Params]]:
  """Loads dlib's face recognition ResNet as ``(FaceResNet module, {'params': ...})``.

  Args:
    path: the ``.dat``; default: ``dlib_face_recognition_resnet_model_v1.dat`` from
      face_recognition_models.
    cache_dir: folder for the converted params (default ``$GRADEJAX_CACHE`` or
      ``~/.cache/gradejax``); the cache file is named by the .dat's sha256.
    precision: passed to :class:`FaceResNet` (None = JAX default).

  Raises:
    dlib_format.DlibFormatError: the file is truncated, not a dlib network, or another network.
  """
  path = pathlib.Path(path) if path is not None else paths.dlib_model(paths.FACE_RECOGNITION)
  file = cache_path(path, cache_dir)
  cached = _read_cache(file) if file.is_file() else None
  if cached is not None:
    params, means = cached
    logging.info('Face ResNet params from cache %s', file)
  else:
    net = dlib_format.read_face_resnet(path)
    params, means = convert(net), tuple(float(m) for m in net.input_means)
    _write_cache(file, params, means)
    logging.info('Face ResNet params converted from %s, cached at %s', path, file)
  params = jax.tree.map(jnp.asarray, params)
  return facenet.FaceResNet(input_means=means, precision=precision), {'params': params}


@functools.partial(jax.jit, static_argnums=0)
def _forward(module: facenet.FaceResNet, params: Params, images: jax.Array) -> jax.Array:
  return module.apply({'params': params}, images)


def embed(module: facenet.FaceResNet, variables: dict[str, Params], images: np.ndarray,
          batch_size: int = 64) -> np.ndarray:
  """Descriptors of ``images [N,150,150,3]`` (float32 in [0,1] or uint8) -> ``[N,128]`` float32.

  Runs in batches of ``batch_size`` (:func:`gradejax.batching.map_batches`: one shape compiles).
  Returns a host (NumPy) array. (float64 input is cast to float32 by jit, unlike
  ``module.apply``, which rejects it.)
  """
  images = np.asarray(images)
  n = len(images)
  if images.ndim != 4:
    raise ValueError(f'embed takes images [N, 150, 150, 3], got shape {images.shape}')
  if batch_size < 1:
    raise ValueError(f'batch_size must be >= 1, got {batch_size}')
  if n == 0:
    return np.zeros((0, dlib_format.FACE_RESNET_DESCRIPTOR_DIM), np.float32)
  params = variables['params']
  return batching.map_batches(lambda b: _forward(module, params, b), images, batch_size)


def _matches(key: str, prefixes: Iterable[str]) -> bool:
  return any(key == p or key.startswith(p + '/') for p in prefixes)


def freeze_partition(params: Params, trainable: Iterable[str] = ()) -> tuple[Params, Params]:
  """Splits ``params`` into ``(trainable, frozen)`` nested dicts.

  ``trainable``: ``/``-joined path prefixes, e.g. ``('fc',)`` or ``('level0', 'fc')`` or
  ``('level0/block0',)``; everything else is frozen. Give only ``trainable`` to the optimiser
  (``tx.init(trainable)``) and recombine with :func:`merge` inside the loss, so the frozen part
  gets no optimiser state and no parameter gradient, while gradients still flow through it to
  its inputs. Unknown prefixes raise ValueError.
  """
  trainable = tuple(trainable)
  flat = traverse_util.flatten_dict(dict(params), sep='/')
  unknown = [p for p in trainable if not any(_matches(k, (p,)) for k in flat)]
  if unknown:
    raise ValueError(f'freeze_partition: no params under {unknown}; top-level names are '
                     f'{sorted({k.split("/")[0] for k in flat})}')
  train = {k: v for k, v in flat.items() if _matches(k, trainable)}
  frozen = {k: v for k, v in flat.items() if not _matches(k, trainable)}
  return (traverse_util.unflatten_dict(train, sep='/'),
          traverse_util.unflatten_dict(frozen, sep='/'))


def merge(trainable: Params, frozen: Params) -> Params:
  """Inverse of :func:`freeze_partition`: one params pytree (the two must not overlap)."""
  a = traverse_util.flatten_dict(dict(trainable), sep='/')
  b = traverse_util.flatten_dict(dict(frozen), sep='/')
  both = sorted(set(a) & set(b))
  if both:
    raise ValueError(f'merge: params in both parts: {both[:5]}')
  return traverse_util.unflatten_dict({**a, **b}, sep='/')
