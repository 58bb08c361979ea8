"""The feature-visualisation page: per unit, the synthesised image beside the dataset images
that activate the unit most (crops around the hot spot). Self-contained HTML via
gradejax.report (base64 images, inline CSS)."""
from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np

from gradejax.report import figures, document
from gradejax.featurevis import dataset_examples


def unit_row(unit: int, synth: np.ndarray, examples: Sequence[np.ndarray] = ()) -> list:
  panels = [figures.image_panel(figures.to_uint8(synth), f'unit {unit}')]
  panels += [figures.image_panel(e, f'top {j + 1}') for j, e in enumerate(examples)]
  return panels


def write(out_dir: str | pathlib.Path, title: str, layer: str, units: np.ndarray,
          images: np.ndarray, history: np.ndarray, settings_text: Sequence[str],
          data: np.ndarray | None = None, top: dict | None = None, crop: int = 64,
          note: str = '') -> pathlib.Path:
  """Writes ``grid.png`` (all synthesised images, ceil(sqrt(U)) per row), one PNG per unit
  and ``index.html``."""
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  rows = []
  for j, u in enumerate(units):
    ex = []
    if data is not None and top is not None:
      ex = [dataset_examples.crop(data[i], top['position'][j, r], crop)
            for r, i in enumerate(top['index'][j])]
    row = unit_row(int(u), images[j], ex)
    figures.save_png(figures.grid([row]), out_dir / f'unit_{int(u):04d}.png')
    rows.append(row)
  per_row = max(1, int(np.ceil(np.sqrt(len(rows)))))  # near-square, not a 256-tall column
  grid = figures.grid([[r[0] for r in rows[i:i + per_row]]
                      for i in range(0, len(rows), per_row)])
  figures.save_png(grid, out_dir / 'grid.png')
  start, end = history[0], history[-1]
  table = document.Table(('unit', 'objective at step 0', 'objective at the end'),
                       [(int(u), float(start[j]), float(end[j])) for j, u in enumerate(units)])
  paras = [f'Layer {layer}: each image maximises one unit. ' + ' '.join(settings_text)]
  if note:
    paras.append(note)
  if top is not None:
    paras.append(f'Beside each: the {top["index"].shape[1]} prepared chips whose mean activation '
                 'of the unit is highest, cropped around its maximum.')
  sections = [document.Section('Synthesised images', paras, [table],
                             [document.Figure(figures.grid([r]), f'unit {int(u)}')
                              for u, r in zip(units, rows)])]
  return document.write(out_dir / 'index.html', title, sections)
