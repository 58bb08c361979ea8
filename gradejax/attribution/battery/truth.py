"""The demo's ground truth for localisation: truth.csv's cue boxes mapped into the chips, and
the images localisation is measured on (all cue-bearing images of the held-out fold)."""
from __future__ import annotations

import csv
import importlib
import pathlib
from typing import Callable, Sequence

import numpy as np

from gradejax import errors
from gradejax.attribution.battery.config import Localisation

CueMaskFn = Callable[..., np.ndarray]


def _read_truth(path: pathlib.Path) -> dict[str, tuple[int, tuple[float, ...]]]:
  """truth.csv -> id -> (cue 0/1, box x0 y0 x1 y1 in photo pixels)."""
  with open(path, newline='', encoding='utf-8') as f:
    rows = list(csv.DictReader(f))
  out = {}
  for n, r in enumerate(rows, start=2):
    try:
      if 'cue_box' in r:
        box = tuple(float(v) for v in r['cue_box'].split()) if r['cue_box'] else ()
      else:
        box = tuple(float(r[k]) for k in ('x0', 'y0', 'x1', 'y1') if r.get(k, '') != '')
      cue = int(float(r['cue']))
    except (KeyError, ValueError) as e:
      raise errors.OptionError(f'{path}, line {n}: need columns id, cue and cue_box "x0 y0 x1 y1" (or '
                       f'x0, y0, x1, y1); got {sorted(r)} ({e})') from e
    out[str(r['id'])] = (cue, box)
  return out


def cue_masks(data_dir: pathlib.Path | None, ids: Sequence[str], size: int, truth: str | None,
              cue_mask_fn: CueMaskFn | None = None) -> tuple[dict[str, np.ndarray], str]:
  """id -> bool [size, size] mask of the planted cue, for the ids that have one; or a message
  saying why localisation cannot be measured."""
  if cue_mask_fn is None:
    try:
      cue_mask_fn = importlib.import_module('gradejax.data.demo_data').cue_mask_in_chip
    except (ImportError, AttributeError):
      return {}, ('Localisation not measured: gradejax.data.demo_data.cue_mask_in_chip is not '
                  'available in this installation.')
  candidates = ([pathlib.Path(truth)] if truth else
                [p / 'truth.csv' for p in ((data_dir, data_dir.parent) if data_dir is not None
                                           else ())])
  path = next((p for p in candidates if p.is_file()), None)
  if path is None:
    return {}, ('Localisation not measured: no truth.csv (the demo workbook\'s ground truth) '
                f'found at {", ".join(map(str, candidates)) or "(no data folder)"}; pass '
                f'--truth PATH for a demo run. Real workbooks have no planted cue.')
  if data_dir is None or not (data_dir / 'manifest.csv').is_file():
    return {}, f'Localisation not measured: no manifest.csv in {data_dir} (chip_affine needed).'
  from gradejax.data import manifest  # the reader of prepare's manifest.csv
  affines = {e.id: e.chip_affine for e in manifest.read(data_dir / 'manifest.csv')}
  boxes = _read_truth(path)
  masks = {}
  for i in ids:
    cue, box = boxes.get(i, (0, ()))
    if cue == 1 and len(box) == 4 and affines.get(i) is not None:
      masks[i] = np.asarray(cue_mask_fn(box, affines[i], size=size), bool)
  if not masks:
    return {}, f'Localisation not measured: none of the shown images carries the cue ({path}).'
  return masks, f'Cue regions from {path.name} mapped into the chips with manifest chip_affine.'


class Floats:
  """Rows ``rows`` of uint8 images (an array or dataset.Images), as float [0, 1] when
  sliced: ``x[i:j]`` reads and converts only those rows."""

  def __init__(self, images, rows: np.ndarray):
    self._images, self._rows = images, np.asarray(rows)
    self.shape = (len(self._rows),) + tuple(images.shape[1:])
    self.dtype = np.dtype(np.float32)

  def __len__(self) -> int:
    return self.shape[0]

  def __getitem__(self, s) -> np.ndarray:
    return np.asarray(self._images[self._rows[s]]).astype(np.float32) / 255.0

  def __array__(self, dtype=None, copy=None):
    return np.asarray(self[:], dtype)


def localisation_images(arrays: dict, data_dir, cfg: Localisation, cue_mask_fn, size: int,
                        shown: np.ndarray
                        ) -> tuple[np.ndarray | None, np.ndarray | None, str, np.ndarray | None]:
  """The images localisation is measured on and their cue masks: all cue-bearing images of
  the held-out fold (``cfg.set == 'fold'``; the shown ones when the data has no folds) ->
  (images float [N, H, W, 3], masks bool [N, H, W], note, their rows in ``arrays`` [N]);
  (None, None, why, None)."""
  use_fold = cfg.set == 'fold' and 'fold' in arrays and cfg.valid_fold >= 0
  pool = (np.nonzero(np.asarray(arrays['fold']) == cfg.valid_fold)[0] if use_fold
          else np.asarray(shown))
  ids = [str(arrays['id'][i]) for i in pool]
  masks, note = cue_masks(data_dir, ids, size, cfg.truth, cue_mask_fn)
  if not masks:
    return None, None, note, None
  keep = [k for k, i in enumerate(ids) if i in masks]
  x = Floats(arrays['images'], pool[keep])  # read when sliced: a process reads its share
  x = x if not isinstance(arrays['images'], np.ndarray) else np.asarray(x)  # in memory: as is
  where = (f'all {len(keep)} cue-bearing images of the held-out fold {cfg.valid_fold} '
           f'({len(pool)} images in the fold)' if use_fold else
           f'the {len(keep)} cue-bearing images among the shown ones')
  return (x, np.stack([masks[ids[k]] for k in keep]), f'{note} Measured on {where}.',
          pool[keep])
