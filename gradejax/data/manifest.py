"""manifest.csv: one line per workbook row, used or skipped (docs/CONTRACTS.md).

Empty cells mean "not applicable" (e.g. no ``label`` or ``fold`` for a skipped row).
"""
from __future__ import annotations

import csv
import dataclasses
import pathlib
from typing import Iterable

import numpy as np

COLUMNS = ('id', 'grade', 'label', 'class_name', 'source_row', 'status', 'reason', 'face_box',
           'detector_score', 'file', 'fold', 'chip_affine', 'centre_crop', 'hidden')


@dataclasses.dataclass
class Entry:
  """One manifest line. ``file`` is relative to the output folder (``chips/<class>/<id>.png``)."""
  source_row: int
  id: str = ''
  grade: float | None = None
  status: str = 'skipped'
  reason: str = ''
  label: int | None = None
  class_name: str = ''
  face_box: tuple[float, float, float, float] | None = None
  detector_score: float | None = None
  file: str = ''
  fold: int | None = None
  chip_affine: np.ndarray | None = None  # float [2, 3]
  centre_crop: bool = False
  hidden: bool = False  # the row is hidden in the workbook

  @property
  def reason_code(self) -> str:
    return self.reason.split(':', 1)[0] if self.reason else ''


def _num(x: float | None, digits: int = 6) -> str:
  return '' if x is None else f'{x:.{digits}g}'


def _row(e: Entry) -> dict[str, str]:
  return {
      'id': e.id,
      'grade': _num(e.grade),
      'label': '' if e.label is None else str(int(e.label)),
      'class_name': e.class_name,
      'source_row': str(e.source_row),
      'status': e.status,
      'reason': e.reason,
      'face_box': '' if e.face_box is None else ' '.join(_num(v, 8) for v in e.face_box),
      'detector_score': _num(e.detector_score),
      'file': e.file,
      'fold': '' if e.fold is None else str(int(e.fold)),
      'chip_affine': ('' if e.chip_affine is None else
                      ' '.join(f'{v:.9g}' for v in np.asarray(e.chip_affine).ravel())),
      'centre_crop': '1' if e.centre_crop else '0',
      'hidden': '1' if e.hidden else '0',
  }


def write(path: str | pathlib.Path, entries: Iterable[Entry]) -> None:
  with open(path, 'w', newline='', encoding='utf-8') as f:
    w = csv.DictWriter(f, fieldnames=COLUMNS)
    w.writeheader()
    for e in sorted(entries, key=lambda e: e.source_row):
      w.writerow(_row(e))


def read(path: str | pathlib.Path) -> list[Entry]:
  """Parses manifest.csv back into entries (numbers as numbers, empty as None)."""
  out = []
  with open(path, newline='', encoding='utf-8') as f:
    for r in csv.DictReader(f):
      opt = lambda k, t: t(r[k]) if r[k] != '' else None  # noqa: E731
      box = tuple(float(v) for v in r['face_box'].split()) if r['face_box'] else None
      aff = (np.array([float(v) for v in r['chip_affine'].split()]).reshape(2, 3)
             if r['chip_affine'] else None)
      out.append(Entry(
          source_row=int(r['source_row']), id=r['id'], grade=opt('grade', float),
          status=r['status'], reason=r['reason'], label=opt('label', int),
          class_name=r['class_name'], face_box=box, detector_score=opt('detector_score', float),
          file=r['file'], fold=opt('fold', int), chip_affine=aff,
          centre_crop=r['centre_crop'] == '1', hidden=r.get('hidden') == '1'))
  return out
