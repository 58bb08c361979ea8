"""The battery end to end: maps of the shown images, sanity, faithfulness, localisation (shown
images and held-out fold), the causal check and the ranking, as one typed :class:`Result`."""
from __future__ import annotations

import functools
import pathlib
import time
from typing import Any, Callable

import numpy as np
from absl import logging

from gradejax import errors
from gradejax import nets
from gradejax.attribution import registry
from gradejax.attribution.battery import (checks, maps as maps_lib, relies, result as R,
                                          truth)
from gradejax.attribution.battery.config import Options


def select(arrays: dict, spec: str) -> np.ndarray:
  """Indices into ``arrays`` for '--images': 'N' (the first N) or 'id1,id2,...'."""
  n = len(arrays['images'])
  spec = str(spec).strip()
  if spec.isdigit():
    if int(spec) < 1:
      raise errors.OptionError('--images must be a positive count or a list of ids')
    return np.arange(min(int(spec), n))
  ids = [s.strip() for s in spec.split(',') if s.strip()]
  where = {str(v): i for i, v in enumerate(arrays['id'])}
  missing = [i for i in ids if i not in where]
  if missing:
    raise errors.OptionError(f'--images: ids {missing} are not in the prepared data (skipped rows have '
                     f'no chip; see manifest.csv status/reason)')
  return np.array([where[i] for i in ids])


class _Clock:
  """Seconds per battery section, for the profile (benchmarks/RESULTS.md)."""

  def __init__(self):
    self.seconds: dict[str, float] = {}
    self._t = time.monotonic()

  def lap(self, section: str) -> None:
    now = time.monotonic()
    self.seconds[section] = self.seconds.get(section, 0.0) + now - self._t
    self._t = now
    logging.info('report: %s done in %.1f s', section, self.seconds[section])


def run(module, variables, arrays: dict, data_dir: str | pathlib.Path | None = None,
        opts: Options = Options(), cue_mask_fn: truth.CueMaskFn | None = None,
        retrain: Callable[[], Any] | None = None, chance: bool = False,
        conditions: bool = False) -> R.Result:
  """The battery on (module, variables) following gradejax.nets and arrays in load_arrays'
  format (images uint8 [N, H, W, 3], id, label, fold, class_names).

  ``retrain() -> params`` (same structure, trained on shuffled labels) enables the
  label-randomisation check; it is called once. ``chance``: the network's predictions are
  not distinguishable from chance (:func:`relies.chance_verdict`), which puts the caveat first in
  the sentence of "What the network relies on"; ``conditions``: its answer is photo conditions
  (:func:`relies.conditions_verdict`), which puts that caveat first instead."""
  cfg = opts.config()
  relies.check(cfg)
  data_dir = pathlib.Path(data_dir) if data_dir is not None else None
  clock = _Clock()
  idx = select(arrays, cfg.images)
  if len(idx) == 0:
    raise errors.OptionError('no images to explain: the prepared data is empty')
  raw = np.asarray(arrays['images'][idx])  # only these (load_arrays' lazy images too)
  x = raw.astype(np.float32) / 255.0
  ids = [str(arrays['id'][i]) for i in idx]
  class_names = list(arrays.get('class_names') or [])
  name_of = lambda k: class_names[k] if k < len(class_names) else str(k)
  fn = nets.bind(module, variables)
  outputs = maps_lib.forward(fn, x)  # the fold's predictions reuse this program
  targets = np.argmax(outputs, axis=1).astype(np.int32)
  layer = cfg.layer or maps_lib.default_layer(fn, x)
  inputs = maps_lib.Inputs(cfg, layer)

  shown_maps, skipped = maps_lib.shown_maps(fn, x, targets, cfg, inputs)
  labels = [name_of(int(arrays['label'][i])) if 'label' in arrays else '?' for i in idx]
  shown = R.Shown(raw, ids, targets, outputs.shape[1], class_names, labels, shown_maps, skipped,
                  layer)
  clock.lap('maps of the shown images')
  pixel_methods = [m for m in shown_maps if registry.get(m).output != 'regions']
  san = checks.sanity_check(module, variables, x, targets, pixel_methods, cfg, inputs,
                            functools.lru_cache(None)(retrain) if retrain else None,
                            trained_maps=shown_maps)
  clock.lap('sanity checks')
  faith = checks.faithfulness_rows(fn, x, targets, shown_maps, pixel_methods, cfg,
                                   outputs.shape[1])
  clock.lap('faithfulness')
  masks, note = truth.cue_masks(data_dir, ids, x.shape[1], cfg.localisation.truth, cue_mask_fn)
  shown_loc, shown_area = checks.shown_localisation(shown_maps, pixel_methods, ids, masks,
                                                    cfg.localisation)
  loc_methods = [m for m in (cfg.localisation.methods or pixel_methods)
                 if registry.get(m).output != 'regions']
  fx, fm, fnote, frows = truth.localisation_images(arrays, data_dir, cfg.localisation,
                                                   cue_mask_fn, x.shape[1], idx)
  fold_rows, causal, known = [], None, {}
  if fm is not None and loc_methods:
    ft, fmaps = maps_lib.fold_predictions_and_maps(fn, fx, cfg, inputs, loc_methods)
    fold_rows = checks.localisation_rows(fmaps, fm, cfg.localisation)
    clock.lap('localisation over the held-out fold')
    causal = checks.causal_rows(fn, fx, ft, fmaps, cfg, fm)
    if cfg.relies.method in fmaps:  # reused by SpRAy, not recomputed
      known = {int(r): (int(t), h) for r, t, h in zip(frows, ft, fmaps[cfg.relies.method])}
  elif loc_methods:
    causal = checks.causal_rows(fn, x, targets, {m: shown_maps[m] for m in loc_methods
                                                 if m in shown_maps}, cfg)
  clock.lap('causal check')
  order, basis = checks.ranking(fold_rows, faith)
  # Purity needs the cue of every fold image: only when localisation read the whole fold.
  cue_masks = ({int(r): m for r, m in zip(frows, fm)}
               if frows is not None and cfg.localisation.set == 'fold' else None)
  rel = relies.section(fn, arrays, x, targets, shown_maps, cfg, inputs, class_names, known,
                       cue_masks, chance, conditions)
  clock.lap('what the network relies on')
  return R.Result(opts, shown, san, faith, shown_loc, shown_area, note, fold_rows, fnote,
                  fm is not None, causal, order, basis, clock.seconds, rel)
