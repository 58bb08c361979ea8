r"""Workbook -> aligned face chips, manifest, summary and a TFDS dataset: the pipeline.

  python -m gradejax.prepare --workbook raw/school.xlsx --out data/school-pivot4 \
      [--pivot 4.0|median] [--bins N] [--folds 5] [--seed 0] [--overwrite]

Each workbook row ends in ``manifest.csv`` exactly once, ``used`` or ``skipped`` with its
reason; a problem with one row (its id, grade or photo) skips that row, never the run. The
output folder is written atomically and ``--overwrite`` replaces only a folder prepare wrote
(:mod:`gradejax.data.output_folder`); ``--check`` is the dry run (:mod:`gradejax.data.dry_run`);
the command line is :mod:`gradejax.prepare`.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import sys
import time
from typing import Callable, Iterable

import numpy as np

from gradejax.data import (faces, folder_input, images, labels, manifest, output_folder, parallel,
                           photo_quality, selection, workbook)
from gradejax.data.manifest import Entry
from gradejax.data.output_folder import (OutputError, OutputExistsError, check_output,  # noqa: F401
                                         clean_leftovers, _swap_by_renames)
from gradejax.options import option
from gradejax import options as optlib

Progress = Callable[[int, int], None]


def _pivot(value: str | float) -> float | str:
  """--pivot: a grade (float) or 'median'."""
  if isinstance(value, str) and value.strip().lower() == 'median':
    return 'median'
  try:
    return float(value)
  except (TypeError, ValueError):
    raise ValueError(f'--pivot must be a grade such as 4.0, or "median"; got {value!r}') from None


@dataclasses.dataclass(frozen=True)
class Options:
  """Everything ``prepare`` needs besides the paths: the source of its flags (gradejax.options)."""
  sheet: str | None = option(None, 'Sheet name (default: first sheet with id+grade columns).')
  id_column: str | None = option(None, 'Header (or column letter) of the anonymous ids.')
  grade_column: str | None = option(None, 'Header (or column letter) of the grades.')
  photo_column: str | None = option(None, 'Header (or column letter) of the photos.')
  group_column: str | None = option(
      None, 'Header (or letter) of an optional group column (cohort, photo session, '
      'photographer): CV folds and permutations then respect groups.')
  grade_min: float = option(1.0, 'Lowest valid grade.')
  grade_max: float = option(6.0, 'Highest valid grade.')
  pivot: float | str = option(4.0, 'Class boundary: a grade (4.0 = pass) or "median".',
                              parse=_pivot)
  bins: int | None = option(None, 'n quantile classes instead of a pivot.')
  detector: str = option('hog', 'dlib face detector.', choices=('hog', 'cnn'))
  upsample: int = option(1, 'Detector upsampling (finds smaller faces, slower).')
  chip_size: int = option(150, 'Chip side in pixels (150 for the dlib ResNet).')
  padding: float = option(0.25, 'dlib chip padding.')
  min_side: int = option(images.DEFAULT_MIN_SIDE, 'Smallest photo side accepted, px.')
  no_face: str = option('skip', 'Photo without a face: skip or centre crop.',
                        choices=('skip', 'centre'))
  multi_face: str = option('best', 'Photo with several faces.',
                           choices=('best', 'largest', 'skip'))
  multi_face_min_score: float = option(
      0.5, 'Weaker detections do not count as another face for --multi_face=skip.')
  detect_max_side: int = option(1024, 'Search larger photos downscaled to this side.')
  duplicates: str = option('first', 'Repeated id: keep the first row (first) or skip every '
                           'copy (all).', choices=('first', 'all'))
  hidden_rows: str = option('use', 'Rows hidden in the workbook: use them (reported) or skip '
                            'them.', choices=('use', 'skip'))
  folds: int = option(5, 'Stratified cross-validation folds.')
  seed: int = option(0, 'Seed of the fold assignment.')
  overwrite: bool = option(False, 'Replace an existing --out (atomically); only a folder '
                           'prepare wrote is replaced.')
  images_outside: bool = option(False, 'Let a CSV --workbook name photos outside --images_dir '
                                '(../x.jpg, absolute paths); refused by default.')

  def face_options(self) -> faces.FaceOptions:
    return faces.FaceOptions(self.detector, self.upsample, self.chip_size, self.padding,
                             self.no_face, self.multi_face, self.multi_face_min_score,
                             self.detect_max_side)


def _check_options(o: Options) -> None:
  optlib.check_choices(o)
  if o.folds < 2:
    raise ValueError(f'--folds must be >= 2, got {o.folds}')
  if o.bins is None:
    _pivot(o.pivot)


def file_stem(student_id: str) -> str:
  """An id's readable file-name part: characters outside [A-Za-z0-9._-] become '_'."""
  stem = re.sub(r'[^A-Za-z0-9._-]', '_', student_id)
  return '_' + stem if stem.startswith('.') else stem


MAX_STEM = 64
_RESERVED = frozenset(['con', 'prn', 'aux', 'nul'] + [f'{d}{i}' for d in ('com', 'lpt')
                                                      for i in range(1, 10)])


def file_names(ids: Iterable[str]) -> dict[str, str]:
  """id -> chip file stem: the id itself when it is a plain, short, portable name that no other
  id equals ignoring case; else its readable part cut to 40 characters plus 10 hex digits of
  its SHA-1 (unique, and distinct ignoring case on macOS/Windows file systems). The manifest
  keeps the real id."""
  ids = list(dict.fromkeys(ids))
  plain = {sid: file_stem(sid) for sid in ids}
  folded = collections.Counter(s.casefold() for s in plain.values())

  def clean(sid: str, stem: str) -> bool:
    return (stem == sid and len(stem) <= MAX_STEM and folded[stem.casefold()] == 1
            and not stem.endswith('.') and stem.split('.')[0].casefold() not in _RESERVED)

  out = {sid: stem if clean(sid, stem) else
         f'{stem[:40]}-{hashlib.sha1(sid.encode("utf-8")).hexdigest()[:10]}'
         for sid, stem in plain.items()}
  seen: dict[str, str] = {}
  for sid, stem in out.items():  # a plain id could equal another's hashed name: lengthen
    if stem.casefold() in seen:
      out[sid] = stem = f'{plain[sid][:40]}-{hashlib.sha1(sid.encode("utf-8")).hexdigest()}'
    seen[stem.casefold()] = sid
  return out


def _ids_and_grades(table: workbook.Table, o: Options) -> list[Entry]:
  """First pass: id and grade checks (cheap), in row order."""
  entries, first_row = [], {}
  for row in table.rows:
    e = Entry(source_row=row.source_row, hidden=row.hidden)
    entries.append(e)
    if row.hidden and o.hidden_rows == 'skip':
      e.id = workbook.parse_id(row.id_value) or ''
      e.reason = 'hidden_row: the row is hidden in the workbook (--hidden_rows=skip)'
      continue
    if row.id_problem:
      e.reason = row.id_problem
      continue
    sid = workbook.parse_id(row.id_value)
    if sid is None:
      e.reason = 'missing_id: the id cell is empty'
      continue
    e.id = sid
    if sid in first_row:
      e.reason = f'duplicate_id: the same id as row {first_row[sid]}'
      continue
    first_row[sid] = row.source_row
    if row.grade_problem:
      e.reason = row.grade_problem
      continue
    e.grade, reason = workbook.parse_grade(row.grade_value, (o.grade_min, o.grade_max))
    if reason:
      e.reason = reason
      continue
    if row.photo_problem:  # e.g. several pictures, or one lying across several rows
      e.reason = row.photo_problem
      continue
    if row.photo is None:
      e.reason = 'no_photo: no picture anchored to or placed in this row'
      continue
    if o.group_column and workbook.parse_id(row.group_value) is None:
      e.reason = f'missing_group: the {o.group_column!r} cell is empty'
      continue
    e.status = 'used'  # provisional: the photo is checked next
  if o.duplicates == 'all':
    dup_ids = {e.id for e in entries if e.reason_code == 'duplicate_id'}
    for e in entries:
      if e.id in dup_ids and e.reason_code != 'duplicate_id':
        e.status = 'skipped'
        e.reason = 'duplicate_id: the id appears in several rows (--duplicates=all)'
  return entries


def _photo_progress() -> Progress:
  """prepare's photo progress in :mod:`gradejax.progress`'s style, on stderr."""
  from gradejax import progress
  task: list = []

  def show(done: int, total: int) -> None:
    if not task:
      task.append(progress.Task('photos', total, unit='photos',
                                emit=lambda line: print(line, file=sys.stderr, flush=True)).start())
    task[0].update(done - task[0].done)
    if done >= total:
      task[0].close()

  return show


def _duplicate_photos(todo: list[Entry], digests: list[str | None]) -> None:
  """Skips every row whose photo has the same decoded pixels as another row's, naming them."""
  rows_of = collections.defaultdict(list)
  for e, d in zip(todo, digests):
    if d is not None:
      rows_of[d].append(e.source_row)
  for e, d in zip(todo, digests):
    others = [r for r in rows_of.get(d, ()) if r != e.source_row]
    if others:
      e.status = 'skipped'
      e.reason = (f'duplicate_photo: the same picture (same pixels) as row '
                  f'{", ".join(map(str, others))}; each student needs their own photo, check '
                  'which row it belongs to')


def prepare(workbook_path: str | os.PathLike, out: str | os.PathLike,
            options: Options = Options(), progress: Progress | None = None,
            workers: int | None = 1, images_dir: str | os.PathLike | None = None) -> dict:
  """Runs the whole preparation; returns the summary dict (also written to summary.json).

  ``workbook_path`` is an .xlsx workbook, or a .csv file (id, grade, file name) naming photos
  in ``images_dir`` (default: the CSV's folder; see :mod:`gradejax.data.folder_input`).
  ``workers`` processes decode and align the photos (None: every core); the output does not
  depend on it. A symlinked ``out`` is resolved (its target is written).

  Raises:
    workbook.WorkbookError: unreadable workbook, missing sheet or columns.
    OutputExistsError: ``out`` exists and ``options.overwrite`` is False.
    OutputError: ``out`` cannot be written (see :func:`output_folder.check_output`), another
      run is writing it, or writing failed.
    ValueError: invalid options, or a labelling that cannot be made (e.g. collapsing bins).
  """
  o = options
  _check_options(o)
  out = output_folder.resolve(out)
  inputs = (workbook_path, images_dir)
  check_output(out, o.overwrite, inputs)  # a file in the way, a read-only folder: at once
  out.parent.mkdir(parents=True, exist_ok=True)
  lock = output_folder.Lock(out).acquire()
  try:
    for line in clean_leftovers(out):  # first, so a run killed mid-swap gets its output back
      print(line, file=sys.stderr)
    check_output(out, o.overwrite, inputs)
    start = time.time()
    summary, write = _prepare(workbook_path, o, progress, workers, images_dir)
    output_folder.build(out, write, o.overwrite, inputs)
  finally:
    lock.release()
  summary['seconds'] = round(time.time() - start, 2)
  return summary


def _prepare(workbook_path, o: Options, progress, workers, images_dir):
  """Reads, checks and aligns; returns the summary and the function writing the output."""
  table = read_table(workbook_path, o, images_dir)
  entries = _ids_and_grades(table, o)
  rows = {r.source_row: r for r in table.rows}
  todo = [e for e in entries if e.status == 'used']
  chips, conditions = {}, {}
  # Decode, detect and align (and measure the photo conditions) in a pool of `workers`
  # processes; results come back in row order. The pool is closed here, before anything is
  # written, so an interrupt in the write phase has no worker to wait for.
  with parallel.mapped([parallel.photo_source(rows[e.source_row].photo) for e in todo],
                       parallel.Job(o.face_options(), o.min_side, conditions=True),
                       workers, progress) as results:
    found = list(results)
  _duplicate_photos(todo, [f.digest for f in found])
  for e, face in zip(todo, found):
    if e.status != 'used':
      continue
    if face.reason is not None:
      e.status, e.reason = 'skipped', face.reason
    else:
      chips[e.source_row] = face.chip
      e.face_box, e.detector_score = face.box, face.score
      e.chip_affine, e.centre_crop = face.affine, face.centre_crop
      row = rows[e.source_row]
      conditions[e.source_row] = dict(
          face.conditions, source_row=e.source_row, id=e.id,
          group=workbook.parse_id(row.group_value) or '')
  used = [e for e in entries if e.status == 'used']
  if used:
    labelling = labels.make_labelling(np.array([e.grade for e in used]), pivot=o.pivot,
                                      bins=o.bins)
  else:  # Still write the manifest: it says why every row was skipped.
    labelling = labels.Labelling((), (), 'none (no usable rows)')
  y = labels.assign(np.array([e.grade for e in used]), labelling)
  folds = labels.stratified_folds(y, o.folds, o.seed)
  stems = file_names(e.id for e in used)
  for e, c, f in zip(used, y, folds):
    e.label, e.class_name, e.fold = int(c), labelling.class_names[c], int(f)
    e.file = f'chips/{e.class_name}/{stems[e.id]}.png'
  summary = _summary(table, entries, labelling, o, workbook_path)

  def write(tmp: pathlib.Path) -> None:
    for name in labelling.class_names:
      (tmp / 'chips' / name).mkdir(parents=True)
    for e in used:
      images.write_png(tmp / e.file, chips[e.source_row])
    manifest.write(tmp / 'manifest.csv', entries)
    photo_quality.write_csv(tmp / 'photo_conditions.csv',  # confound baselines
                            [conditions[e.source_row] for e in used])
    (tmp / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n', encoding='utf-8')
    if summary['used']:
      from gradejax.data import dataset  # Imported late: tfds is slow to import.
      import tensorflow_datasets as tfds
      tfds.disable_progress_bar()
      dataset.build(tmp, labelling.class_names, o.chip_size)

  return summary, write


def _summary(table, entries, labelling, o: Options, workbook_path) -> dict:
  used = [e for e in entries if e.status == 'used']
  skipped = collections.Counter(e.reason_code for e in entries if e.status == 'skipped')
  counts = collections.Counter(e.label for e in used)
  fold_counts = collections.Counter((e.fold, e.label) for e in used)
  return {
      'workbook': pathlib.Path(workbook_path).name,
      'sheet': table.sheet,
      'header_row': table.header_row,
      'columns': {k: workbook.column_label(v) for k, v in table.columns.items()},
      'rows_read': len(entries),
      'blank_rows_ignored': table.blank_rows,
      'hidden_rows': {'used': sum(1 for e in used if e.hidden),
                      'skipped': sum(1 for e in entries if e.hidden and e.status != 'used')},
      'used': len(used),
      'faces_found': sum(1 for e in used if not e.centre_crop),
      'centre_crops': sum(1 for e in used if e.centre_crop),
      'skipped': len(entries) - len(used),
      'skipped_by_reason': dict(sorted(skipped.items())),
      'labelling': labelling.rule,
      'thresholds': list(labelling.thresholds),
      'class_names': list(labelling.class_names),
      'class_counts': {n: counts.get(k, 0) for k, n in enumerate(labelling.class_names)},
      'fold_class_counts': [[fold_counts.get((f, k), 0) for k in range(labelling.num_classes)]
                            for f in range(o.folds)],
      'skipped_grades': selection.skip_selection(entries, labelling, (o.grade_min, o.grade_max)),
      'options': dataclasses.asdict(o),
  }


def read_table(workbook_path: str | os.PathLike, o: Options,
               images_dir: str | os.PathLike | None = None) -> workbook.Table:
  """The rows of an .xlsx workbook, or of a CSV (id, grade, file name) naming photos in
  ``images_dir`` (default: the CSV's folder)."""
  if folder_input.is_csv(workbook_path):
    return folder_input.read_folder(workbook_path, images_dir, id_column=o.id_column,
                                    grade_column=o.grade_column, file_column=o.photo_column,
                                    allow_outside=o.images_outside)
  return workbook.read_workbook(workbook_path, sheet=o.sheet, id_column=o.id_column,
                                grade_column=o.grade_column, photo_column=o.photo_column,
                                group_column=o.group_column)


def format_summary(summary: dict) -> str:
  """A plain-text table of the counts (no grades, no ids)."""
  lines = [f'{"rows read":<28}{summary["rows_read"]:>8}',
           f'{"faces found":<28}{summary["faces_found"]:>8}',
           f'{"centre crops (no face)":<28}{summary["centre_crops"]:>8}',
           f'{"used":<28}{summary["used"]:>8}',
           f'{"skipped":<28}{summary["skipped"]:>8}']
  hidden = summary.get('hidden_rows', {})
  if hidden.get('used'):
    lines.insert(4, f'{"  of which hidden rows":<28}{hidden["used"]:>8}')
  lines += [f'  {code:<26}{n:>8}' for code, n in summary['skipped_by_reason'].items()]
  lines.append(f'classes ({summary["labelling"]})')
  lines += [f'  {name:<26}{n:>8}' for name, n in summary['class_counts'].items()]
  width = max(len(l) for l in lines)
  out = '\n'.join(['-' * width] + lines + ['-' * width])
  biased = selection.sentence(summary.get('skipped_grades'), summary.get('rows_read'))
  return out + (f'\nWARNING: {biased[:1].upper()}{biased[1:]}.' if biased else '')


def check(workbook_path: str | os.PathLike, options: Options = Options(),
          images_dir: str | os.PathLike | None = None) -> tuple[list[Entry], str]:
  """The dry run (:func:`gradejax.data.dry_run.check`)."""
  from gradejax.data import dry_run
  return dry_run.check(workbook_path, options, images_dir)
