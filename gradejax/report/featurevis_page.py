"""The feature-visualisation page: per unit (named by its class for the classifier's logits), the
synthesised image beside the dataset images that activate the unit most (crops around the hot
spot), the objective's curve during the optimisation, and, when given, feature accentuations and
caricatures of real chips (what in a given photo drives the unit). Self-contained HTML via
gradejax.report (base64 images, inline SVG, inline CSS)."""
from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np

from gradejax.report import charts, document, panels, verdict
from gradejax.optvis import dataset_examples


def unit_row(unit: int, synth: np.ndarray, examples: Sequence[np.ndarray] = (),
             name: str | None = None) -> list:
  row = [panels.image_panel(panels.to_uint8(synth), name or f'unit {unit}')]
  row += [panels.image_panel(e, f'top {j + 1}') for j, e in enumerate(examples)]
  return row


def accent_row(original: np.ndarray, accentuated: np.ndarray, caricature: np.ndarray) -> list:
  """chip | accentuated | where it changed (|difference| summed over colour) | caricature."""
  change = np.abs(np.asarray(accentuated, np.float64) - panels.to_uint8(original) / 255.0)
  return [panels.image_panel(panels.to_uint8(original), 'chip'),
          panels.image_panel(panels.to_uint8(accentuated), 'accentuated'),
          panels.heat_panel(panels.to_uint8(original), change.sum(-1), False, 'changed'),
          panels.image_panel(panels.to_uint8(caricature), 'caricature')]


def write(out_dir: str | pathlib.Path, title: str, layer: str, units: np.ndarray,
          images: np.ndarray, history: np.ndarray, settings_text: Sequence[str],
          data: np.ndarray | None = None, top: dict | None = None, crop: int = 64,
          note: str = '', names: Sequence[str] | None = None, accents: dict | None = None,
          workdir: str | pathlib.Path | None = None) -> pathlib.Path:
  """Writes ``grid.png`` (all synthesised images, ceil(sqrt(U)) per row), one PNG per unit
  and ``index.html``. ``names`` label the units (default 'unit N'); ``accents`` (from
  ``gradejax.optvis.inversion.accentuations``: original/accentuated/caricature [U,H,W,3],
  history [steps, U], before/after [U], note) adds the accentuation section; ``workdir`` (a
  training run) puts its verdict sentence and a link to its attribution report on top."""
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  names = list(names) if names is not None else [f'unit {int(u)}' for u in units]
  rows = []
  for j, u in enumerate(units):
    ex = []
    if data is not None and top is not None:
      ex = [dataset_examples.crop(data[i], top['position'][j, r], crop)
            for r, i in enumerate(top['index'][j])]
    row = unit_row(int(u), images[j], ex, names[j])
    panels.save_png(panels.grid([row]), out_dir / f'unit_{int(u):04d}.png')
    rows.append(row)
  per_row = max(1, int(np.ceil(np.sqrt(len(rows)))))  # near-square, not a 256-tall column
  grid = panels.grid([[r[0] for r in rows[i:i + per_row]]
                      for i in range(0, len(rows), per_row)])
  panels.save_png(grid, out_dir / 'grid.png')
  start, end = history[0], history[-1]
  table = document.Table(('unit', 'name', 'objective at step 0', 'objective at the end'),
                         [(int(u), names[j], float(start[j]), float(end[j]))
                          for j, u in enumerate(units)])
  paras = [f'Layer {layer}: each image maximises one unit. ' + ' '.join(settings_text)]
  if note:
    paras.append(note)
  if top is not None:
    paras.append(f'Beside each: the {top["index"].shape[1]} prepared chips whose mean activation '
                 'of the unit is highest, cropped around its maximum.')
  curves = document.Chart(charts.svg_lines({n: history[:, j] for j, n in enumerate(names)
                                             if j < 10}, 'step', 'objective',
                                            'Objective during the optimisation'),
                          'The objective each image reached at every step (first 10 units).')
  sections = []
  if workdir is not None:
    sections.append(_run_section(pathlib.Path(workdir)))
  sections.append(document.Section('Synthesised images', paras, [table],
                                   [document.Figure(panels.grid([r]), n)
                                    for n, r in zip(names, rows)], charts=[curves]))
  if accents is not None:
    sections.append(_accent_section(units, names, accents, out_dir))
  return document.write(out_dir / 'index.html', title, sections)


def _run_section(workdir: pathlib.Path) -> document.Section:
  v, _, _ = verdict.read(workdir / 'eval')
  links = ([('Attribution report and the full verdict', '../report/index.html')]
           if (workdir / 'report' / 'index.html').is_file() else [])
  lead = [verdict.quotable(v)] if v is not None else []
  return document.Section('This run', [] if v is not None else [
      'No verdict yet for this run (python -m gradejax.evaluate --workdir DIR).'],
      links=links, lead=lead)


def _accent_section(units, names, accents: dict, out_dir: pathlib.Path) -> document.Section:
  figs, rows = [], []
  for j, u in enumerate(units):
    row = accent_row(accents['original'][j], accents['accentuated'][j], accents['caricature'][j])
    g = panels.grid([row])
    panels.save_png(g, out_dir / f'accent_{int(u):04d}.png')
    figs.append(document.Figure(g, f'{names[j]}: its top chip, accentuated'))
    rows.append((int(u), names[j], float(accents['before'][j]), float(accents['after'][j])))
  chart = document.Chart(charts.svg_lines(
      {n: accents['history'][:, j] for j, n in enumerate(names) if j < 10}, 'step',
      'objective', 'Accentuation objective'),
      'Unit minus the distance to the original, at every step.')
  return document.Section(
      'Feature accentuation and caricatures',
      ['Optimisation seeded from a real chip (the unit\'s most activating one): the accentuated '
       'image raises the unit while staying close to the photo, so what changed is what in '
       'this photo drives the unit. The caricature amplifies everything the network sees in '
       'the chip at one layer.', accents.get('note', '')],
      [document.Table(('unit', 'name', 'unit on the chip', 'unit accentuated'), rows)],
      figs, charts=[chart])
