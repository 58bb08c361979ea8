"""Name -> attribution method, with what each needs, so the CLI and the report can list them.

``compute(name, fn, images, targets, **inputs_and_options)`` calls a method with the inputs it
needs (``layer``, ``baseline``, ``key``, ``weights``: offered to every method, each taking those
it uses) and its options; ``heatmap`` reduces the result to one value per pixel ``[B, H, W]``
(class indices for ``region_class``).

A method's options and their defaults are its library function's keyword-only parameters,
read from the signature (:func:`gradejax.attribution.common.options_of`): nothing here repeats
a name or a default. An option the method does not take is a ValueError naming the ones it
does, never dropped; :func:`options_for` picks a method's share of one shared option set.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp

from gradejax import nets
from gradejax.attribution import class_activation as cam
from gradejax.attribution import (deeplift, extremal, gradients, guided, regions, rise,
                                  superpixels, xrai)
from gradejax.attribution import occlusion_sensitivity as occlusion
from gradejax.attribution.common import DEFAULT_PRECISION, options_of, to_heatmap

Array = jax.Array
INPUTS = ('layer', 'baseline', 'key', 'weights')
_NOT_OPTIONS = INPUTS + ('precision',)  # precision: compute's own keyword, for every method
@dataclasses.dataclass(frozen=True)
class Method:
  """One attribution method.

  ``library`` is the function that computes it, called as ``library(fn, images, targets,
  **inputs, **fixed, **options, precision=...)``; its keyword-only parameters (less the
  ``INPUTS`` and what ``fixed`` sets) are the method's options, with their defaults, plus those
  of ``forwards`` (a function the library passes ``**options`` on to). ``output`` is 'pixels'
  ([B, H, W, C], reduced with ``reduce``), 'map' ([B, H, W]) or 'regions' (int [B, ny, nx]);
  ``signed``: whether negative values mean something; ``needs``: inputs it cannot run without.
  """
  name: str
  library: Callable[..., Array]
  summary: str
  output: str = 'pixels'
  reduce: str | None = 'sum'
  signed: bool = True
  needs: tuple[str, ...] = ()
  fixed: tuple[tuple[str, Any], ...] = ()
  forwards: Callable | None = None
  hidden: tuple[str, ...] = ()  # parameters the library sets itself (superpixels' n_seg)

  @property
  def inputs(self) -> tuple[str, ...]:
    """The INPUTS the library function takes."""
    params = inspect.signature(getattr(self.library, 'unjitted', self.library)).parameters
    return tuple(n for n in INPUTS if n in params)

  def parameters(self) -> dict[str, inspect.Parameter]:
    fixed = dict(self.fixed)
    own = {n: p for n, p in options_of(self.library).items() if n not in _NOT_OPTIONS}
    if self.forwards is not None:
      own.update({n: p for n, p in options_of(self.forwards).items()
                  if n not in own and n not in _NOT_OPTIONS})
    return {n: p for n, p in own.items() if n not in fixed and n not in self.hidden}

  @property
  def options(self) -> tuple[str, ...]:
    """The option names, in signature order."""
    return tuple(self.parameters())

  def defaults(self) -> dict[str, Any]:
    """Option -> its library default (options without a default are left out)."""
    return {n: p.default for n, p in self.parameters().items()
            if p.default is not inspect.Parameter.empty}

  @property
  def needs_layer(self) -> bool:
    return 'layer' in self.needs

  @property
  def needs_baseline(self) -> bool:
    return 'baseline' in self.needs

  @property
  def needs_key(self) -> bool:
    return 'key' in self.needs

  @property
  def needs_weights(self) -> bool:
    return 'weights' in self.needs

  def check(self, options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(self.options))
    if unknown:
      raise ValueError(f'attribution method {self.name!r} takes no option '
                       f'{", ".join(map(repr, unknown))}; its options: '
                       f'{", ".join(self.options) or "none"}')

  def call(self, fn, images, targets, given: dict[str, Any], options: dict[str, Any],
           precision):
    self.check(options)
    kwargs = {k: given[k] for k in self.inputs}
    return self.library(fn, images, targets, **kwargs, **dict(self.fixed), **options,
                        precision=precision)


def _needs(f: Callable) -> tuple[str, ...]:
  """The INPUTS ``f`` takes without a default (a ``baseline`` defaults to black)."""
  params = inspect.signature(getattr(f, 'unjitted', f)).parameters
  return tuple(n for n in INPUTS if n in params and params[n].default is inspect.Parameter.empty)


def _entry(name, f, summary, *, needs=None, **meta) -> Method:
  return Method(name, f, summary, needs=_needs(f) if needs is None else needs, **meta)


def _regions(fn, images, targets, *, layer=None, precision=DEFAULT_PRECISION, **options):
  del targets  # every class competes
  return regions.region_class_map(fn, images, layer=layer, precision=precision, **options)


def _xrai(fn, images, targets, *, baseline=None, key=None, layer=None,
          precision=DEFAULT_PRECISION, base: str = 'integrated_gradients', **options):
  """XRAI over the map of registry method ``base``: ``scales`` / ``regions`` go to
  :func:`xrai.xrai`, every other option to the base method (which must take it)."""
  if base == 'xrai' or get(base).output == 'regions':
    raise ValueError(f'xrai: base must be a pixel-map method, got {base!r}')
  own = {k: options.pop(k) for k in list(options) if k in options_of(xrai.xrai)}
  given = dict(baseline=baseline, key=key, layer=layer)
  a = heatmap(base, fn, images, targets, precision=precision,
              **{k: v for k, v in given.items() if k in get(base).inputs}, **options)
  return xrai.xrai(a, images, **own)


class _Xrai(Method):
  """XRAI's options are its own plus those of its ``base`` method (known at call time)."""

  def parameters(self) -> dict[str, inspect.Parameter]:
    own = {n: p for n, p in options_of(self.library).items() if n not in _NOT_OPTIONS}
    own.update(options_of(xrai.xrai))
    return own

  def base_of(self, options: dict[str, Any]) -> Method:
    return get(options.get('base', self.defaults()['base']))

  def check(self, options: dict[str, Any]) -> None:
    own = set(self.options)
    base = self.base_of(options)
    base.check({k: v for k, v in options.items() if k not in own})


def _superpixels(scorer):
  return dict(fixed=(('scorer', scorer),), forwards=superpixels.segment_scores,
              hidden=('n_seg',))


METHODS: dict[str, Method] = {m.name: m for m in [
    _entry('saliency', gradients.saliency, 'vanilla gradient |dS/dx|, max over channels',
           reduce='abs_max', signed=False),
    _entry('gradient_x_input', gradients.gradient_x_input, 'x * dS/dx, summed over channels'),
    _entry('smoothgrad', gradients.smoothgrad, 'gradient averaged over noisy copies',
           reduce='abs_max', signed=False),
    _entry('integrated_gradients', gradients.integrated_gradients,
           '(x - x\') * mean path gradient (completeness)'),
    _entry('guided_backprop', guided.guided_backprop, 'gradient through guided ReLUs',
           reduce='abs_max', signed=False),
    _entry('deconvnet', guided.deconvnet, 'Zeiler & Fergus deconvnet backward pass',
           reduce='abs_max', signed=False),
    _entry('cam', cam.cam, 'class activation map (GAP + linear heads only)', output='map',
           reduce=None),
    _entry('grad_cam', cam.grad_cam, 'Grad-CAM at a named tap', output='map', reduce=None,
           signed=False),
    _entry('guided_grad_cam', cam.guided_grad_cam, 'guided backprop x Grad-CAM',
           reduce='abs_max', signed=False),
    _entry('occlusion', occlusion.occlusion, 'score drop when a patch is hidden', output='map',
           reduce=None),
    _entry('occlusion_multiscale', occlusion.occlusion_multiscale,
           'occlusion at several patch sizes, each scaled to max |drop| 1, mean or max',
           output='map', reduce=None),
    _entry('rise', rise.rise, 'RISE: score-weighted random smooth masks (centred)',
           output='map', reduce=None),
    _entry('superpixel_ablation', superpixels.superpixel_ablation,
           'score drop when one SLIC superpixel is removed', needs=(), output='map',
           reduce=None, **_superpixels('removal')),
    _entry('kernel_shap', superpixels.superpixel_ablation,
           'KernelSHAP Shapley values of SLIC superpixels', needs=('key',), output='map',
           reduce=None, **_superpixels('kernel_shap')),
    _entry('lime', superpixels.superpixel_ablation, 'LIME ridge fit over SLIC superpixels',
           needs=('key',), output='map', reduce=None, **_superpixels('lime')),
    _entry('extremal', extremal.extremal,
           'extremal perturbation: smooth masks of fixed areas keeping the score, averaged',
           output='map', reduce=None, signed=False),
    _Xrai('xrai', _xrai,
          'XRAI-style: multi-scale SLIC regions ranked by the density of a base map (IG)',
          output='map', reduce=None),
    _entry('deeplift', deeplift.deeplift_rescale, 'DeepLIFT rescale rule vs a reference',
           reduce='sum'),
    _entry('region_class', _regions,
           'most-likely class per region (occlusion, or Grad-CAM per class at a layer)',
           output='regions', reduce=None, signed=False, forwards=regions.region_class_map),
]}


def options_for(name: str, shared: dict[str, Any]) -> dict[str, Any]:
  """The part of one keyword set shared by several methods (a command's flags) that method
  ``name`` takes: its options (for xrai: its own and its base's) and ``compute``'s own
  keywords (the INPUTS, ``precision``). ``compute`` itself never drops one."""
  m = get(name)
  takes = set(m.options) | set(_NOT_OPTIONS)
  if isinstance(m, _Xrai):
    takes |= set(m.base_of(shared).options)
  return {k: v for k, v in shared.items() if k in takes}


def defaults(name: str) -> dict[str, Any]:
  """Method ``name``'s options and their library defaults (one source: the signature)."""
  return get(name).defaults()


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
