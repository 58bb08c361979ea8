"""Dataset examples: the real images that activate a unit most, and the crop around the spot
where they do, shown beside the synthesised images."""
from __future__ import annotations

import functools

import jax
import numpy as np

from gradejax import batching, imageops, nets

Array = jax.Array


@functools.partial(jax.jit, static_argnames=('layer',))
def _unit_maps(fn, images, layer):
  a = fn(images)[1][layer]
  return a if a.ndim == 4 else a[:, None, None, :]


def top_k(fn: nets.ModelFn, images: np.ndarray, layer: str, units: np.ndarray, k: int = 4,
          batch_size: int = 64) -> dict[str, np.ndarray]:
  """Over ``images`` [N,H,W,3] uint8 or [0,1] float: for each unit the k images with the
  highest mean channel activation at ``layer``.

  Returns ``index`` [U, k] (into images), ``score`` [U, k] and ``position`` [U, k, 2]: the
  (row, col) of the maximum in the layer's map, in input pixels (for crops)."""
  x = np.asarray(images)
  x = imageops.to_unit_float(x)
  n = len(x)
  xp = batching.pad_to_multiple(x, batch_size)
  means, argmax, hw = [], [], None
  for s in range(0, len(xp), batch_size):  # one compiled program, reused per batch
    a = np.asarray(_unit_maps(fn, xp[s:s + batch_size], layer))[..., units]
    hw = a.shape[1:3]
    means.append(a.mean((1, 2)))
    argmax.append(a.reshape(a.shape[0], -1, a.shape[-1]).argmax(1))
  means = np.concatenate(means)[:n]  # [N, U]
  argmax = np.concatenate(argmax)[:n]
  order = np.argsort(-means, axis=0, kind='stable')[:k].T  # [U, k]
  score = np.take_along_axis(means.T, order, axis=1)
  flat = np.take_along_axis(argmax.T, order, axis=1)
  ry, rx = x.shape[1] / hw[0], x.shape[2] / hw[1]
  position = np.stack([(flat // hw[1] + 0.5) * ry, (flat % hw[1] + 0.5) * rx], -1)
  return {'index': order, 'score': score, 'position': position}


def crop(image: np.ndarray, centre: np.ndarray, size: int) -> np.ndarray:
  """A size x size crop of [H,W,C] around (row, col), shifted to stay inside the image."""
  h, w = image.shape[:2]
  size = min(size, h, w)
  r = int(np.clip(round(centre[0] - size / 2), 0, h - size))
  c = int(np.clip(round(centre[1] - size / 2), 0, w - size))
  return image[r:r + size, c:c + size]


def top_k_across_processes(fn: nets.ModelFn, share: np.ndarray, layer: str, units: np.ndarray,
                           k: int = 4, batch_size: int = 64, start: int = 0,
                           total: int | None = None) -> dict[str, np.ndarray]:
  """:func:`top_k` over ``total`` images split over the processes of a multi-host run
  (``gradejax.distributed.split``): ``share`` [n, H, W, 3] are this process's images, rows
  ``start..start+n`` of them. Each process scores its own share; the per-share top k are
  exchanged and merged (a collective: every process calls it). The result, on every
  process, is :func:`top_k`'s over all ``total`` images (``index`` into them): shares are in
  image order and both sorts are stable, so ties still go to the earlier image. One process:
  ``share`` is every image and this is :func:`top_k`."""
  from jax.experimental import multihost_utils
  total = len(share) if total is None else int(total)
  if jax.process_count() == 1:
    return top_k(fn, share, layer, units, k, batch_size)
  k = min(k, total)
  u = len(units)
  mine = {'index': np.full((u, k), -1, np.int64), 'score': np.full((u, k), -np.inf, np.float32),
          'position': np.zeros((u, k, 2), np.float64)}
  if len(share):  # a share shorter than k (or empty) is padded with -inf scores, sorted last
    got = top_k(fn, share, layer, units, k, batch_size)
    n = got['index'].shape[1]
    mine['index'][:, :n] = got['index'] + start
    mine['score'][:, :n] = got['score']
    mine['position'][:, :n] = got['position']
  every = {name: np.asarray(multihost_utils.process_allgather(v)) for name, v in mine.items()}
  cat = {name: np.concatenate(list(v), axis=1) for name, v in every.items()}  # [U, P * k, ...]
  order = np.argsort(-cat['score'], axis=1, kind='stable')[:, :k]
  return {name: np.take_along_axis(v, order if v.ndim == 2 else order[..., None], axis=1)
          for name, v in cat.items()}


def gather_examples(share: np.ndarray, start: int, index: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
  """The images that ``index`` (into all images, e.g. :func:`top_k_across_processes`'s)
  names, from the processes holding them (``share`` = rows ``start..start+len(share)``) ->
  (images [M, H, W, C] of the M distinct indices, ``index`` remapped into them). Every
  process calls it (a collective in a multi-host run) and gets the same answer."""
  from jax.experimental import multihost_utils
  index = np.asarray(index)
  wanted, remapped = np.unique(index, return_inverse=True)
  mine = np.zeros((len(wanted),) + share.shape[1:], share.dtype)
  here = (wanted >= start) & (wanted < start + len(share))
  mine[here] = share[wanted[here] - start]
  if jax.process_count() > 1:  # exactly one process holds each image; the others send zeros
    mine = np.asarray(multihost_utils.process_allgather(mine)).sum(0).astype(share.dtype)
  return mine, remapped.reshape(index.shape)
