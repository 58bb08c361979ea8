"""The most-likely class per region: which class each image region speaks for.

Two sources, both ``int32 [B, ny, nx]`` class indices over a grid of regions:

* ``'occlusion'``: for every occluder position, the class whose score drops most when the
  region is hidden (the class the region supports most; Zeiler & Fergus 2014, fig. 7).
* ``'grad_cam'``: the unrectified Grad-CAM map of every class at tap ``layer``; each feature-map
  cell gets the class with the largest value.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gradejax import nets
from gradejax.attribution.class_activation import grad_cam_maps
from gradejax.attribution.common import method
from gradejax.attribution import fills
from gradejax.attribution.occlusion_sensitivity import (DEFAULT_PATCH, DEFAULT_STRIDE,
                                                      occlusion_all_outputs)

Array = jax.Array


@method
def region_class_map(fn: nets.ModelFn, images: Array, *, source: str | None = None,
                     layer: str | None = None, patch: int = DEFAULT_PATCH,
                     stride: int = DEFAULT_STRIDE, fill: float | Array = fills.DEFAULT_FILL,
                     chunk: int = 16, unroll: int | bool | None = None) -> Array:
  """Per-region argmax class, int32 [B, ny, nx] (occlusion grid or the tap's [h, w]).

  ``source`` None: 'grad_cam' when a ``layer`` is given, else 'occlusion'."""
  if source is None:
    source = 'grad_cam' if layer is not None else 'occlusion'
  if source == 'occlusion':
    d = occlusion_all_outputs(fn, images, patch=patch, stride=stride, fill=fill, chunk=chunk,
                              unroll=unroll)
    return jnp.argmax(d, axis=-1).astype(jnp.int32)
  if source == 'grad_cam':
    if layer is None:
      raise ValueError("region_class_map(source='grad_cam') needs layer=<tap name>")
    out, _ = jax.eval_shape(fn, images)
    b, k = out.shape
    maps = jax.lax.map(
        lambda c: grad_cam_maps(fn, images, jnp.full((b,), c, jnp.int32), layer, rectify=False),
        jnp.arange(k))  # [K, B, h, w]
    return jnp.argmax(maps, axis=0).astype(jnp.int32)
  raise ValueError(f"source must be 'occlusion' or 'grad_cam', got {source!r}")
