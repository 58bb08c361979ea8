"""The battery's configuration: what the attribution report computes, in one place.

:class:`Options` is the flat form (the ``visualize`` flags, gradejax.options): every choice the
report makes differently from a method's library default is a field here, with the reason
beside it. :meth:`Options.config` turns it into the frozen :class:`Config` the battery runs on:
one sub-config (keyword options) per attribution method, looked up by the method's registry
name (big_vision style: ``config.methods['occlusion']`` is what ``registry.compute`` receives),
and one sub-config per check. An option not listed for a method keeps the library's default.
"""
from __future__ import annotations

import dataclasses
import types
from typing import Any, Callable, Mapping, Sequence

from gradejax.attribution import registry
from gradejax.attribution.occlusion_sensitivity import DEFAULT_FILL
from gradejax.options import option

DEFAULT_METHODS = ('saliency', 'integrated_gradients', 'grad_cam', 'occlusion')
PRECISIONS = ('highest', 'high', 'default', 'float32', 'tensorfloat32', 'bfloat16')


@dataclasses.dataclass
class Options:
  """What the report computes: the source of the ``visualize`` flags (gradejax.options)."""
  methods: Sequence[str] = option(DEFAULT_METHODS, f'comma-separated, from: '
                                  f'{", ".join(registry.METHODS)}')
  images: str = option('8', 'how many images (the first N) or comma-separated ids')
  layer: str | None = option(None, 'tap for Grad-CAM-like methods (default: the last spatial '
                             'tap with a map of at least 7 px)')
  cam_pooled: str = option('pooled', 'tap of the pooled features, for CAM')
  precision: str = option('highest', 'jax.default_matmul_precision for every map',
                          choices=PRECISIONS)
  seed: int = option(0, 'PRNG seed (SmoothGrad noise, RISE masks, sanity re-initialisation)')
  steps: int = option(32, 'integrated-gradients steps')
  n_samples: int = option(16, 'SmoothGrad samples')
  noise_level: float = option(0.15, 'SmoothGrad noise, as a share of the input range')
  # Occlusion: 24 px (the demo sticker is 16-19 px on a 150 px chip, read from either half,
  # so a patch must hide all of it) at stride 8 (256 positions), painted at each patch's
  # centre: pointing game 0.667 [0.521, 0.792], 8.2x the uniform mass over the demo's held-out
  # fold, against 15 / 15's (benchmarks/RESULTS.md, issue 12); 22 px / stride 4 reaches 0.750
  # at 4.3x the forwards.
  patch: int = option(24, 'occlusion patch size (px)')
  stride: int = option(8, 'occlusion stride (px)')
  # How the occluded copies are batched: by default the library's 16 positions per call in a
  # loop unrolled on a CPU (measured quiet, 2026-12-03, face ResNet, 8 images x 256 positions:
  # 224-229 forwards/s unrolled against 157-171 rolled at any chunk or partial unroll; the
  # unrolled program compiles ~10 s, but the report reuses it for every batch of the fold).
  # --occlusion_batch N: N images per call in a rolled loop (compiles in 1-2 s; for one-off
  # image counts or a memory bound), maps equal to float32 rounding.
  occlusion_batch: int | None = option(None, 'occluded images per forward call of occlusion, '
                                       'in a rolled loop (default: the library\'s 16 '
                                       'positions per call, unrolled on a CPU)')
  fill: float = option(DEFAULT_FILL, 'occluder value in [0, 1] for --fill_mode value (0.5: '
                       'mid-grey; 0: black, captum\'s default baseline, reads as a dark object '
                       'to a face network)')
  occlusion_aggregate: str = option(
      'centre', 'how occlusion paints each patch position\'s drop onto pixels: at the pixels '
      'nearest the patch\'s centre (a cue still read while half hidden drops the score only '
      'when one patch hides all of it; the map then peaks there) or the mean over the patches '
      'covering each pixel', choices=('centre', 'mean'))
  perturbation_score: str = option(
      'logit', 'what occlusion, occlusion_multiscale and RISE explain: the predicted class\'s '
      'logit, or its contrast (that logit minus the mean of the other classes\': with two '
      'classes the logit difference, blind to changes that move every class alike)',
      choices=('logit', 'contrast'))
  multiscale_combine: str = option('mean', 'occlusion_multiscale: mean or max over the patch '
                                   'sizes of the maps scaled to max |drop| 1',
                                   choices=('mean', 'max'))
  sanity_images: int = option(2, 'images used by the randomisation checks')
  faithfulness_steps: int = option(10, 'deletion/insertion curve steps')
  pointing_tolerance: float = option(4.0, 'pointing game: px a map\'s maximum may lie outside '
                                     'the cue region')
  truth: str | None = option(None, 'truth.csv of a demo workbook (default: beside the data)')
  # Perturbation methods (occlusion, RISE, superpixels, the causal check): what a removed
  # region becomes. 'inpaint' (from its surroundings) removes a small cue without painting a
  # new object; 'value' is the constant ``fill`` (the grey occluder of earlier reports).
  fill_mode: str = option('inpaint', 'what perturbation methods put where they remove pixels: '
                          'inpainted from the surroundings, a blurred copy, or the constant '
                          '--fill', choices=('inpaint', 'blur', 'value'))
  blur_sigma: float = option(5.0, 'Gaussian sigma (px) of the blur and inpaint fills')
  rise_masks: int = option(2000, 'RISE random masks')
  rise_cells: int = option(8, 'RISE grid cells per side')
  segments: int = option(64, 'SLIC superpixels (superpixel_ablation, kernel_shap, lime)')
  shap_samples: int = option(256, 'coalitions for kernel_shap / lime')
  patches: tuple[int, ...] = option((8, 16, 32), 'occlusion_multiscale patch sizes (px)')
  xrai_base: str = option('integrated_gradients', 'attribution XRAI ranks regions by')
  # Localisation over all cue-bearing images of the held-out fold (not only the shown ones).
  localisation_set: str = option('fold', 'localisation over all cue-bearing images of the '
                                 'held-out fold, or over the shown images only',
                                 choices=('fold', 'shown'))
  valid_fold: int = option(0, 'held-out fold (the run config\'s valid_fold)', flag=False)
  localisation_methods: Sequence[str] | None = option(
      None, 'methods measured on the held-out fold (default: --methods)')
  batch: int = option(8, 'images per call for the held-out-fold maps (bounds memory)')
  bootstrap: int = option(1000, 'bootstrap resamples for the localisation CIs')
  causal_size: int = option(16, 'side (px) of the square the causal check removes')
  causal_random: int = option(8, 'random squares per image in the causal check')
  road_fractions: tuple[float, ...] = option((0.01, 0.02, 0.05, 0.1, 0.2),
                                             'ROAD: shares of pixels removed')
  # "What the network relies on" (SpRAy strategies, their causal check, TCAV): the rest of its
  # settings are the defaults of the Relies sub-config below.
  relies_method: str = option('occlusion', 'map SpRAy clusters over the held-out fold (a '
                              'faithful perturbation method; its fold maps are reused)')
  relies_members: int = option(16, 'members per strategy the causal check removes the '
                               'strategy\'s region from (bounds its forwards)')
  concepts: str | None = option(None, 'folder of concept image folders (DIR/<concept>/*.png '
                                'and DIR/random/*.png) for TCAV; default: no concept test')
  tcav_layer: str | None = option(None, 'tap TCAV reads (default: the representation the '
                                  'trained head reads, extractor/<head_input>, e.g. the '
                                  'descriptor; a network without one: the Grad-CAM tap)')
  tcav_score: str = option('contrast', "TCAV's directional derivative of: 'contrast' (the "
                           "class's logit minus the others' mean: what decides the "
                           "prediction) or 'logit' (Kim et al.'s and captum's: the class's "
                           'logit alone)')

  def config(self) -> 'Config':
    """The frozen battery config: per-method keyword options and per-check settings."""
    return Config.from_options(self)


def _fill(o: Options) -> dict[str, Any]:
  return dict(fill=o.fill, fill_mode=o.fill_mode, blur_sigma=o.blur_sigma)


# Method name -> the report's keyword options for it (only what the method takes; the rest keep
# the library's defaults). ``registry.compute(name, fn, x, t, **config.methods[name])``.
_METHOD_OPTIONS: dict[str, Callable[[Options], dict[str, Any]]] = {
    'smoothgrad': lambda o: dict(n_samples=o.n_samples, noise_level=o.noise_level),
    'integrated_gradients': lambda o: dict(steps=o.steps),
    'occlusion': lambda o: dict(patch=o.patch, stride=o.stride, aggregate=o.occlusion_aggregate,
                                score=o.perturbation_score, **_fill(o)),
    'occlusion_multiscale': lambda o: dict(patches=tuple(o.patches), combine=o.multiscale_combine,
                                           aggregate=o.occlusion_aggregate,
                                           score=o.perturbation_score, **_fill(o)),
    # 40 unrolled copies of a ResNet compile for minutes on a CPU.
    'rise': lambda o: dict(n_masks=o.rise_masks, cells=o.rise_cells, unroll=False,
                           score=o.perturbation_score, **_fill(o)),
    'superpixel_ablation': lambda o: dict(n_segments=o.segments, **_fill(o)),
    'kernel_shap': lambda o: dict(n_segments=o.segments, n_samples=o.shap_samples, **_fill(o)),
    'lime': lambda o: dict(n_segments=o.segments, n_samples=o.shap_samples, **_fill(o)),
    # Occlusion regions (layer None): comparable across classes at any network.
    'region_class': lambda o: dict(patch=o.patch, stride=o.stride, fill=o.fill),
}


def _xrai_options(o: Options) -> dict[str, Any]:
  """XRAI's base method runs with the base's own report options (those XRAI passes on)."""
  base = _METHOD_OPTIONS.get(o.xrai_base, lambda _: {})(o)
  # registry.options_for: XRAI takes its own options and its base method's.
  return registry.options_for('xrai', dict(base=o.xrai_base, **base))


@dataclasses.dataclass(frozen=True)
class Sanity:
  images: int = 2
  seed: int = 1  # of the re-initialised params (the battery's seed + 1)


@dataclasses.dataclass(frozen=True)
class Faithfulness:
  steps: int = 10
  road_fractions: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2)


@dataclasses.dataclass(frozen=True)
class Localisation:
  set: str = 'fold'
  methods: tuple[str, ...] | None = None
  valid_fold: int = 0
  pointing_tolerance: float = 4.0
  bootstrap: int = 1000
  truth: str | None = None
  seed: int = 0  # of the bootstrap resamples
  # The target a map must meet on the fold: both, not either.
  pointing_target: float = 0.8
  mass_target_x_uniform: float = 10.0


@dataclasses.dataclass(frozen=True)
class Causal:
  size: int = 16
  random: int = 8


@dataclasses.dataclass(frozen=True)
class Relies:
  """What the network relies on: SpRAy of ``method``'s held-out-fold maps per predicted class
  (maps block-averaged to ``size`` px cells, ``k_neighbours`` graph, at most ``max_clusters``),
  each strategy's causal check (its mean map's top share of pixels, at each of ``areas``,
  removed from up to ``members`` members, against ``random`` random squares of that area each:
  members x areas x (1 + random) forwards per strategy; CIs Bonferroni-adjusted over the areas,
  the area reported chosen by :func:`gradejax.attribution.spray.choose_area`), and TCAV of the
  ``concepts`` folders at tap ``layer``
  (``runs`` random counterexample sets, up to ``class_images`` images per class; the
  derivative of ``score``, :func:`gradejax.attribution.common.class_score`)."""
  method: str = 'occlusion'
  size: int = 16
  k_neighbours: int = 10
  max_clusters: int = 4
  # From a small part (an eye is ~2% of the chip) to a face region: a cue of any extent has a
  # region that removes it (a band across the eyes is ~8%).
  areas: tuple[float, ...] = (0.015, 0.05, 0.15)
  members: int = 16
  random: int = 4
  bootstrap: int = 1000
  concepts: str | None = None
  layer: str | None = None
  runs: int = 20  # Kim et al.: >= 20
  class_images: int = 32
  seed: int = 0
  score: str = 'contrast'


@dataclasses.dataclass(frozen=True)
class Config:
  """The battery: ``methods`` (registry names, in order) with ``method_options[name]`` the
  keyword options each receives; the inputs every method shares (``layer``, ``cam_pooled``,
  ``precision``, ``seed``); the perturbation fill the causal check uses; one sub-config per
  check; ``batch`` images per call on the held-out fold."""
  methods: tuple[str, ...]
  method_options: Mapping[str, Mapping[str, Any]]
  images: str = '8'
  layer: str | None = None
  cam_pooled: str = 'pooled'
  precision: str = 'highest'
  seed: int = 0
  fill: Mapping[str, Any] = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))
  sanity: Sanity = Sanity()
  faithfulness: Faithfulness = Faithfulness()
  localisation: Localisation = Localisation()
  causal: Causal = Causal()
  relies: Relies = Relies()
  batch: int = 8
  occlusion_batch: int | None = None  # images per occlusion forward call; None: the library's

  @classmethod
  def from_options(cls, o: Options) -> 'Config':
    for m in o.methods:
      registry.get(m)  # unknown names fail before any work
    # Every method's sub-config (not only the listed ones'): a caller may compute any.
    per = {m: types.MappingProxyType(_xrai_options(o) if m == 'xrai' else
                                     _METHOD_OPTIONS.get(m, lambda _: {})(o))
           for m in registry.METHODS}
    return cls(
        methods=tuple(o.methods), method_options=types.MappingProxyType(per), images=o.images,
        layer=o.layer, cam_pooled=o.cam_pooled, precision=o.precision, seed=o.seed,
        fill=types.MappingProxyType(_fill(o)),
        sanity=Sanity(images=o.sanity_images, seed=o.seed + 1),
        faithfulness=Faithfulness(steps=o.faithfulness_steps,
                                  road_fractions=tuple(o.road_fractions)),
        localisation=Localisation(
            set=o.localisation_set, valid_fold=o.valid_fold,
            methods=tuple(o.localisation_methods) if o.localisation_methods else None,
            pointing_tolerance=o.pointing_tolerance, bootstrap=o.bootstrap, truth=o.truth,
            seed=o.seed),
        causal=Causal(size=o.causal_size, random=o.causal_random),
        relies=Relies(method=o.relies_method, members=o.relies_members, concepts=o.concepts,
                      layer=o.tcav_layer, bootstrap=o.bootstrap, seed=o.seed,
                      score=o.tcav_score),
        batch=o.batch,
        occlusion_batch=o.occlusion_batch)
