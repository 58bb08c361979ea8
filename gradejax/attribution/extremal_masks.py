"""The mask of extremal perturbations (:mod:`gradejax.attribution.extremal`): torchray's
max-convolution generator (:func:`mask_geometry`, :func:`generate`), its smoothness for a given
area (:func:`smoothness`), and the area constraint's sorted reference with ties shared
(:func:`area_reference`, :func:`tied_targets`)."""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Array = jax.Array
COLDNESS = 20.0  # torchray's softmax-pooling temperature


@dataclasses.dataclass(frozen=True)
class MaskGeometry:
  """Static geometry of the max-convolution generator for one image size.

  Pixel ``(y, x)`` sees the K1 x K1 nodes of the zero-padded parameter grid starting at node
  ``(rows[y], cols[x])``; ``rows[y] = (y + offset[0]) // step`` (columns alike), so the
  pixels of one ``step`` x ``step`` cell see the same nodes. ``weight`` float32 [H, W, K1 * K1]:
  the kernel value of each (pixel, node) pair, nodes in raster order; ``shape_in``: the
  parameter grid (h_in, w_in); ``pad``: zero nodes on each side of it; ``cells``: the node
  windows computed (ny, nx) before they are spread over the pixels.
  """
  rows: np.ndarray
  cols: np.ndarray
  weight: np.ndarray
  shape_in: tuple[int, int]
  pad: int
  step: int
  k1: int
  offset: tuple[int, int]
  cells: tuple[int, int]


def mask_geometry(shape: tuple[int, int], step: int, sigma: float) -> MaskGeometry:
  """torchray's ``MaskGenerator(shape, step, sigma)`` as window offsets and kernel weights.

  Node ``i`` sits at pixel ``step * i`` of the image; pixel ``y`` sees the nodes
  ``floor((y + margin) / step) - padding + k``, k < 2 radius + 1, with ``margin = sigma``,
  ``padding = 1 + ceil(2 sigma / step)``, ``radius = 1 + ceil(sigma / step)`` (nodes beyond the
  grid are zeros); kernel ``exp(-2 max(d / sigma - 1/2, 0)^2)`` of the Euclidean distance d.
  """
  if int(step) != step or step < 1 or sigma <= 0:
    raise ValueError(f'extremal: step must be a positive integer and sigma > 0; got '
                     f'step={step}, sigma={sigma}')
  step = int(step)
  h, w = shape
  margin = sigma
  padding = 1 + math.ceil((margin + sigma) / step)
  radius = 1 + math.ceil(sigma / step)
  shape_in = (math.ceil(h / step), math.ceil(w / step))
  m = round(margin)
  k = np.arange(2 * radius + 1)

  def axis(size):
    u = np.arange(size) + m  # pixel in torchray's margin-including frame
    node = u[:, None] // step - padding + k[None, :]  # [size, K1] node index on the grid
    delta = u[:, None] - (margin + step * node)
    return node, delta.astype(np.float64)

  ny, dy = axis(h)
  nx, dx = axis(w)
  d = np.sqrt(dy[:, None, :, None] ** 2 + dx[None, :, None, :] ** 2)  # [H, W, K1, K1]
  weight = np.exp(-2 * np.maximum(d / sigma - 0.5, 0) ** 2).astype(np.float32)
  pad = padding + 2 * radius  # enough zeros that every index lands on the padded grid
  rows, cols = ny[:, 0] + pad, nx[:, 0] + pad  # the first node each pixel sees, padded grid
  # rows[y] = (y + m) // step + (pad - padding): offset = m + step (pad - padding) >= 0
  off = m + step * (pad - padding)
  assert (rows == (np.arange(h) + off) // step).all() and (cols == (np.arange(w) + off) // step
                                                           ).all()
  cells = ((off + h + step - 1) // step, (off + w + step - 1) // step)
  return MaskGeometry(rows=rows.astype(np.int32), cols=cols.astype(np.int32),
                      weight=weight.reshape(h, w, -1), shape_in=shape_in, pad=pad, step=step,
                      k1=len(k), offset=(off, off), cells=cells)


def generate(params: Array, geometry: MaskGeometry) -> Array:
  """Mask parameters [..., h_in, w_in] in [0, 1] -> masks [..., H, W] in [0, 1]: the smooth
  max over the nodes each pixel sees of ``param * kernel`` (softmax pooling).

  Written densely for speed (no gather, whose gradient is a scatter): the K1 x K1 node window
  of every cell is 2 K1 shifted slices of the padded grid (rows, then columns), spread over
  the cell's ``step`` x ``step`` pixels by a broadcast; the softmax's maximum is a constant of
  the gradient (the pooling does not depend on it), so it is not differentiated."""
  g = geometry
  lead = params.shape[:-2]
  h, w = g.weight.shape[:2]
  q = params.reshape((-1,) + params.shape[-2:])
  q = jnp.pad(q, ((0, 0), (g.pad, g.pad), (g.pad, g.pad)))
  n, (cy, cx), s, k1 = q.shape[0], g.cells, g.step, g.k1
  rows = jnp.stack([q[:, i:i + cy] for i in range(k1)], axis=-1)  # [N, cy, Wp, K1]
  win = jnp.stack([rows[:, :, j:j + cx] for j in range(k1)], axis=-1).reshape(
      n, cy, cx, k1 * k1)  # [N, cy, cx, K1 (row) x K1 (col)]
  v = jnp.broadcast_to(win[:, :, None, :, None], (n, cy, s, cx, s, k1 * k1)).reshape(
      n, cy * s, cx * s, k1 * k1)[:, g.offset[0]:g.offset[0] + h, g.offset[1]:g.offset[1] + w]
  v = v * g.weight
  z = COLDNESS * v
  e = jnp.exp(z - lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True)))
  out = jnp.clip(jnp.sum(v * e, axis=-1) / jnp.sum(e, axis=-1), 0.0, 1.0)
  return out.reshape(lead + (h, w))


def area_reference(areas: Sequence[float], n: int) -> Array:
  """The sorted binary mask of each area: float32 [A, n], 0 for the first ``int(n (1 - a))``."""
  cut = np.array([int(n * (1 - a)) for a in areas])
  return jnp.asarray((np.arange(n)[None, :] >= cut[:, None]).astype(np.float32))


def smoothness(area: float, shape: tuple[int, int]) -> float:
  """The generator's ``sigma`` (px) for masks down to ``area`` (a fraction) of an image of
  ``shape``: the largest whose one-node mask (a disc of mass ~3.9 sigma^2 px, measured) fits
  in that area, so the smallest mask can be one binary disc. torchray's fixed 21 px makes a
  one-node disc of ~1700 px: 7.4% of a 150 px chip, so a 2% mask could only be a dim blur."""
  return float(max(1.0, math.sqrt(area * shape[0] * shape[1] / 3.9)))


def tied_targets(flat: Array, cut: Array) -> Array:
  """The rank loss's target of every pixel with ties shared: ``flat`` [..., n] mask values,
  ``cut`` int [...] (broadcastable): the number of zeros in the sorted reference.

  ``mean((sort(m) - r)^2)`` pairs the j-th smallest value with ``r_j``; among equal values
  (a mask at its start, or clipped at 0 or 1: most pixels) the sort's order is arbitrary, so
  its gradient picks the pixels that may keep their value by their index (raster order: the
  bottom rows), not by the reward. Here a pixel's target is the mean of ``r`` over the ranks
  its tie group spans, so tied pixels are pushed alike and the reward alone separates them;
  for distinct values it is ``r`` at the pixel's rank (the same loss and gradient). Float
  [..., n].
  """
  srt = jnp.sort(flat, axis=-1)
  pos = lambda side: jax.vmap(lambda row, q: jnp.searchsorted(row, q, side=side))(
      srt.reshape(-1, srt.shape[-1]), flat.reshape(-1, flat.shape[-1])).reshape(flat.shape)
  lo, hi = pos('left'), pos('right')  # the tie group's ranks [lo, hi)
  c = jnp.broadcast_to(cut[..., None] if cut.ndim == flat.ndim - 1 else cut, flat.shape)
  ones = lambda k: jnp.maximum(k - c, 0)  # ones among the first k entries of r
  return ((ones(hi) - ones(lo)) / jnp.maximum(hi - lo, 1)).astype(flat.dtype)
