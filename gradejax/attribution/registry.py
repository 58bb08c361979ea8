"""Name -> attribution method, with what each needs, so the CLI and the report can list them.

``compute(name, fn, images, targets, **inputs)`` calls a method with the inputs it needs
(``layer``, ``baseline``, ``key``, ``weights``) and its own options; ``heatmap`` reduces the
result to one value per pixel ``[B, H, W]`` (class indices for ``region_class``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from gradejax import nets
from gradejax.attribution import class_activation as cam
from gradejax.attribution import (deeplift, extremal, gradients, guided, regions, rise,
                                  superpixels, xrai)
from gradejax.attribution import occlusion_sensitivity as occlusion
from gradejax.attribution.common import DEFAULT_PRECISION, to_heatmap

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Method:
  """One attribution method.

  ``call(fn, images, targets, inputs, options, precision)`` returns the raw attribution;
  ``output`` is 'pixels' ([B, H, W, C], reduced with ``reduce``), 'map' ([B, H, W]) or
  'regions' (int [B, ny, nx]); ``signed``: whether negative values mean something.
  """
  name: str
  call: Callable[..., Array]
  summary: str
  output: str = 'pixels'
  reduce: str | None = 'sum'
  signed: bool = True
  needs_layer: bool = False
  needs_baseline: bool = False
  needs_key: bool = False
  needs_weights: bool = False
  options: tuple[str, ...] = ()


def _opts(options: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
  return {k: v for k, v in options.items() if k in allowed}


def _entry(name, f, summary, *, inputs=(), options=(), **meta):
  def call(fn, images, targets, given, opts, precision):
    kwargs = {k: given[k] for k in inputs}
    return f(fn, images, targets, **kwargs, **_opts(opts, options), precision=precision)
  return Method(name, call, summary, options=options,
                needs_layer='layer' in inputs, needs_baseline='baseline' in inputs,
                needs_key='key' in inputs, needs_weights='weights' in inputs, **meta)


def _regions(fn, images, targets, *, layer=None, precision=DEFAULT_PRECISION, **opts):
  del targets  # every class competes
  source = opts.pop('source', 'grad_cam' if layer is not None else 'occlusion')
  return regions.region_class_map(fn, images, source=source, layer=layer, precision=precision,
                                  **opts)


_FILL = ('fill', 'fill_mode', 'blur_sigma')
_SEG = ('segments', 'n_segments', 'compactness', 'n_samples', 'chunk', 'unroll', 'kernel_width', 'ridge') + _FILL


def _superpixels(scorer):
  def f(fn, images, targets, *, key=None, precision=DEFAULT_PRECISION, **opts):
    return superpixels.superpixel_ablation(fn, images, targets, key=key, scorer=scorer,
                                           precision=precision, **opts)
  return f


def _xrai(fn, images, targets, *, baseline=None, key=None, layer=None,
          precision=DEFAULT_PRECISION, base: str = 'integrated_gradients', scales=(16, 32, 64, 128),
          **opts):
  """XRAI over the map of registry method ``base`` (its options pass through)."""
  if base == 'xrai' or get(base).output == 'regions':
    raise ValueError(f'xrai: base must be a pixel-map method, got {base!r}')
  m = get(base)
  allowed = {k: v for k, v in opts.items() if k in m.options}
  a = heatmap(base, fn, images, targets, baseline=baseline, key=key, layer=layer,
              precision=precision, **allowed)
  return xrai.xrai(a, images, scales=scales)


_XRAI = ('base', 'scales', 'steps', 'chunk', 'unroll', 'n_samples', 'noise_level', 'n_masks',
         'patch', 'stride') + _FILL

METHODS: dict[str, Method] = {m.name: m for m in [
    _entry('saliency', gradients.saliency, 'vanilla gradient |dS/dx|, max over channels',
           reduce='abs_max', signed=False),
    _entry('gradient_x_input', gradients.gradient_x_input, 'x * dS/dx, summed over channels'),
    _entry('smoothgrad', gradients.smoothgrad, 'gradient averaged over noisy copies',
           inputs=('key',), options=('noise_level', 'n_samples', 'chunk', 'unroll'), reduce='abs_max',
           signed=False),
    _entry('integrated_gradients', gradients.integrated_gradients,
           '(x - x\') * mean path gradient (completeness)', inputs=('baseline',),
           options=('steps', 'chunk', 'unroll')),
    _entry('guided_backprop', guided.guided_backprop, 'gradient through guided ReLUs',
           reduce='abs_max', signed=False),
    _entry('deconvnet', guided.deconvnet, 'Zeiler & Fergus deconvnet backward pass',
           reduce='abs_max', signed=False),
    _entry('cam', cam.cam, 'class activation map (GAP + linear heads only)',
           inputs=('weights', 'layer'), output='map', reduce=None),
    _entry('grad_cam', cam.grad_cam, 'Grad-CAM at a named tap', inputs=('layer',),
           output='map', reduce=None, signed=False),
    _entry('guided_grad_cam', cam.guided_grad_cam, 'guided backprop x Grad-CAM',
           inputs=('layer',), reduce='abs_max', signed=False),
    _entry('occlusion', occlusion.occlusion, 'score drop when a patch is hidden',
           options=('patch', 'stride', 'chunk', 'unroll', 'aggregate', 'score') + _FILL,
           output='map',
           reduce=None),
    _entry('occlusion_multiscale', occlusion.occlusion_multiscale,
           'occlusion at several patch sizes, each scaled to max |drop| 1, mean or max',
           options=('patches', 'strides', 'combine', 'chunk', 'unroll', 'aggregate', 'score')
           + _FILL, output='map',
           reduce=None),
    _entry('rise', rise.rise, 'RISE: score-weighted random smooth masks (centred)',
           inputs=('key',), options=('n_masks', 'cells', 'p_keep', 'chunk', 'unroll', 'centre',
                                     'score') + _FILL, output='map', reduce=None),
    _entry('superpixel_ablation', _superpixels('removal'),
           'score drop when one SLIC superpixel is removed', options=_SEG, output='map',
           reduce=None),
    _entry('kernel_shap', _superpixels('kernel_shap'),
           'KernelSHAP Shapley values of SLIC superpixels', inputs=('key',), options=_SEG,
           output='map', reduce=None),
    _entry('lime', _superpixels('lime'), 'LIME ridge fit over SLIC superpixels',
           inputs=('key',), options=_SEG, output='map', reduce=None),
    Method('xrai',
           lambda fn, x, t, given, opts, precision: _xrai(
               fn, x, t, baseline=given.get('baseline'), key=given.get('key'),
               layer=given.get('layer'), precision=precision, **_opts(opts, _XRAI)),
           'XRAI-style: multi-scale SLIC regions ranked by the density of a base map (IG)',
           output='map', reduce=None, options=_XRAI),
    _entry('extremal', extremal.extremal,
           'extremal perturbation: smooth masks of fixed areas keeping the score, averaged',
           options=extremal.OPTIONS, output='map', reduce=None, signed=False),
    _entry('deeplift', deeplift.deeplift_rescale, 'DeepLIFT rescale rule vs a reference',
           inputs=('baseline',), reduce='sum'),
    Method('region_class',
           lambda fn, x, t, given, opts, precision: _regions(
               fn, x, t, layer=given.get('layer'), precision=precision,
               **_opts(opts, ('source', 'patch', 'stride', 'fill', 'chunk', 'unroll'))),
           'most-likely class per region (occlusion, or Grad-CAM per class at a layer)',
           output='regions', reduce=None, signed=False,
           options=('source', 'patch', 'stride', 'fill', 'chunk', 'unroll')),
]}


def get(name: str) -> Method:
  if name not in METHODS:
    raise ValueError(f'unknown attribution method {name!r}; known: {", ".join(METHODS)}')
  return METHODS[name]


def compute(name: str, fn: nets.ModelFn, images: Array, targets: Array, *,
            layer: str | None = None, baseline: Array | None = None, key: Array | None = None,
            weights: Array | None = None, precision: str | None = DEFAULT_PRECISION,
            **options) -> Array:
  """Runs method ``name``; raises ValueError naming what is missing (layer, key, weights)."""
  m = get(name)
  if m.needs_layer and layer is None:
    raise ValueError(f'method {name!r} needs layer=<tap name> (e.g. --layer level0)')
  if m.needs_key and key is None:
    raise ValueError(f'method {name!r} needs key=jax.random.key(seed)')
  if m.needs_weights and weights is None:
    raise ValueError(f'method {name!r} needs the linear head weights [C, K] '
                     f'(cam.linear_head_weights)')
  given = {'layer': layer, 'baseline': baseline, 'key': key, 'weights': weights}
  return m.call(fn, jnp.asarray(images), targets, given, options, precision)


def heatmap(name: str, fn: nets.ModelFn, images: Array, targets: Array, **kwargs) -> Array:
  """``compute`` reduced to ``[B, H, W]`` at the input resolution (float, or int32 class
  indices for 'regions' methods, upsampled by nearest neighbour)."""
  m = get(name)
  raw = compute(name, fn, images, targets, **kwargs)
  if m.output == 'regions':
    h, w = images.shape[1:3]
    ny, nx = raw.shape[1:]
    iy = jnp.minimum(jnp.arange(h) * ny // h, ny - 1)
    ix = jnp.minimum(jnp.arange(w) * nx // w, nx - 1)
    return raw[:, iy][:, :, ix]
  return to_heatmap(raw, m.reduce or 'sum')
