r"""Workbook -> aligned face chips, manifest, summary and a TFDS dataset.

  python -m gradejax.prepare --workbook raw/school.xlsx --out data/school-pivot4 \
      [--pivot 4.0|median] [--bins N] [--folds 5] [--seed 0] [--overwrite]

Everything is built in a hidden sibling folder and renamed into place at the end, so ``--out``
holds either nothing, the previous complete run, or this complete run. Each workbook row ends
in ``manifest.csv`` exactly once, ``used`` or ``skipped`` with its reason.
"""
from __future__ import annotations

import collections
import ctypes
import dataclasses
import json
import os
import pathlib
import re
import shutil
import sys
import tempfile
import time
from typing import Callable

import numpy as np

from gradejax.data import faces, images, labels, manifest, photo_quality, workbook
from gradejax.data.manifest import Entry

Progress = Callable[[int, int], None]


class OutputExistsError(FileExistsError):
  """``--out`` exists and ``--overwrite`` was not given."""


@dataclasses.dataclass(frozen=True)
class Options:
  """Everything ``prepare`` needs besides the two paths (the CLI flags, one to one)."""
  sheet: str | None = None
  id_column: str | None = None
  grade_column: str | None = None
  photo_column: str | None = None
  group_column: str | None = None  # cohort / photo session / photographer (optional)
  grade_min: float = 1.0
  grade_max: float = 6.0
  pivot: float | str = 4.0  # a grade, or 'median'
  bins: int | None = None  # n quantile bins instead of a pivot
  detector: str = 'hog'
  upsample: int = 1
  chip_size: int = 150
  padding: float = 0.25
  min_side: int = images.DEFAULT_MIN_SIDE
  no_face: str = 'skip'
  multi_face: str = 'best'
  multi_face_min_score: float = 0.5
  detect_max_side: int = 1024
  duplicates: str = 'first'  # 'first': keep the first row of an id; 'all': skip every copy
  folds: int = 5
  seed: int = 0
  overwrite: bool = False

  def face_options(self) -> faces.FaceOptions:
    return faces.FaceOptions(self.detector, self.upsample, self.chip_size, self.padding,
                             self.no_face, self.multi_face, self.multi_face_min_score,
                             self.detect_max_side)


def _check_options(o: Options) -> None:
  choices = {'detector': ('hog', 'cnn'), 'no_face': ('skip', 'centre'),
             'multi_face': ('best', 'largest', 'skip'), 'duplicates': ('first', 'all')}
  for name, allowed in choices.items():
    if getattr(o, name) not in allowed:
      raise ValueError(f'--{name} must be one of {", ".join(allowed)}; got {getattr(o, name)!r}')
  if o.folds < 2:
    raise ValueError(f'--folds must be >= 2, got {o.folds}')
  if o.bins is None and not (isinstance(o.pivot, str) and o.pivot.strip().lower() == 'median'):
    try:
      float(o.pivot)
    except (TypeError, ValueError):
      raise ValueError(f'--pivot must be a grade or "median"; got {o.pivot!r}') from None


def file_stem(student_id: str) -> str:
  """An id as a safe file name: characters outside [A-Za-z0-9._-] become '_'."""
  stem = re.sub(r'[^A-Za-z0-9._-]', '_', student_id)
  return '_' + stem if stem.startswith('.') else stem


def _ids_and_grades(table: workbook.Table, o: Options) -> list[Entry]:
  """First pass: id and grade checks (cheap), in row order."""
  entries, first_row, stems = [], {}, {}
  for row in table.rows:
    e = Entry(source_row=row.source_row)
    entries.append(e)
    sid = workbook.parse_id(row.id_value)
    if sid is None:
      e.reason = 'missing_id: the id cell is empty'
      continue
    e.id = sid
    if sid in first_row:
      e.reason = f'duplicate_id: the same id as row {first_row[sid]}'
      continue
    first_row[sid] = row.source_row
    stem = file_stem(sid)
    if stem in stems:
      e.reason = f'duplicate_id: same file name {stem!r} as the id in row {stems[stem]}'
      continue
    stems[stem] = row.source_row
    e.grade, reason = workbook.parse_grade(row.grade_value, (o.grade_min, o.grade_max))
    if reason:
      e.reason = reason
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


def _progress_printer(stream=sys.stderr) -> Progress:
  tty = stream.isatty()
  last = [-1]

  def show(done: int, total: int) -> None:
    pct = 100 * done // max(total, 1)
    if tty:
      bar = '#' * (pct // 4) + '.' * (25 - pct // 4)
      stream.write(f'\rphotos [{bar}] {done}/{total}')
      if done == total:
        stream.write('\n')
    elif pct // 10 != last[0] or done == total:
      stream.write(f'photos: {done}/{total} ({pct}%)\n')
      last[0] = pct // 10
    stream.flush()

  return show


def prepare(workbook_path: str | os.PathLike, out: str | os.PathLike,
            options: Options = Options(), progress: Progress | None = None) -> dict:
  """Runs the whole preparation; returns the summary dict (also written to summary.json).

  Raises:
    workbook.WorkbookError: unreadable workbook, missing sheet or columns.
    OutputExistsError: ``out`` exists and ``options.overwrite`` is False.
    ValueError: invalid options, or a labelling that cannot be made (e.g. collapsing bins).
  """
  o = options
  _check_options(o)
  out = pathlib.Path(out).absolute()
  if out.exists() and not o.overwrite:
    raise OutputExistsError(f'{out} already exists; pass --overwrite to replace it, or choose '
                            'another --out.')
  start = time.time()
  table = workbook.read_workbook(workbook_path, sheet=o.sheet, id_column=o.id_column,
                                 grade_column=o.grade_column, photo_column=o.photo_column,
                                 group_column=o.group_column)
  entries = _ids_and_grades(table, o)
  rows = {r.source_row: r for r in table.rows}
  todo = [e for e in entries if e.status == 'used']
  models = faces.load_models(o.detector) if todo else None
  lm68 = photo_quality.load_landmarks68() if todo else None
  chips, conditions = {}, {}
  for i, e in enumerate(todo):
    image, reason = images.decode_photo(rows[e.source_row].photo.data, min_side=o.min_side)
    if reason is None:
      face, reason = faces.find_face(models, image, o.face_options())
    if reason is not None:
      e.status, e.reason = 'skipped', reason
    else:
      chips[e.source_row] = face.chip
      e.face_box, e.detector_score = face.box, face.score
      e.chip_affine, e.centre_crop = face.affine, face.centre_crop
      row = rows[e.source_row]
      conditions[e.source_row] = dict(
          photo_quality.row_conditions(row.photo.data, image, face, lm68, o.chip_size),
          source_row=e.source_row, id=e.id, group=workbook.parse_id(row.group_value) or '')
    if progress:
      progress(i + 1, len(todo))
  used = [e for e in entries if e.status == 'used']
  if used:
    labelling = labels.make_labelling(np.array([e.grade for e in used]), pivot=o.pivot,
                                      bins=o.bins)
  else:  # Still write the manifest: it says why every row was skipped.
    labelling = labels.Labelling((), (), 'none (no usable rows)')
  y = labels.assign(np.array([e.grade for e in used]), labelling)
  folds = labels.stratified_folds(y, o.folds, o.seed)
  for e, c, f in zip(used, y, folds):
    e.label, e.class_name, e.fold = int(c), labelling.class_names[c], int(f)
    e.file = f'chips/{e.class_name}/{file_stem(e.id)}.png'
  summary = _summary(table, entries, labelling, o, workbook_path)
  _write_atomically(out, entries, chips, summary, labelling, o,
                    [conditions[e.source_row] for e in used])
  summary['seconds'] = round(time.time() - start, 2)
  return summary


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
      'options': dataclasses.asdict(o),
  }


def _exchange(a: pathlib.Path, b: pathlib.Path) -> bool:
  """Swaps two paths atomically with Linux renameat2(RENAME_EXCHANGE); False if unsupported."""
  try:
    renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
  except (OSError, AttributeError):
    return False
  at_fdcwd, rename_exchange = -100, 2
  return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _write_atomically(out: pathlib.Path, entries, chips, summary, labelling, o: Options,
                      conditions=()) -> None:
  out.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f'.{out.name}.tmp-', dir=out.parent))
  try:
    for name in labelling.class_names:
      (tmp / 'chips' / name).mkdir(parents=True)
    for e in entries:
      if e.status == 'used':
        images.write_png(tmp / e.file, chips[e.source_row])
    manifest.write(tmp / 'manifest.csv', entries)
    photo_quality.write_csv(tmp / 'photo_conditions.csv', conditions)  # confound baselines
    (tmp / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n', encoding='utf-8')
    if summary['used']:
      from gradejax.data import dataset  # Imported late: tfds is slow to import.
      import tensorflow_datasets as tfds
      tfds.disable_progress_bar()
      dataset.build(tmp, labelling.class_names, o.chip_size)
    if out.exists():
      if not o.overwrite:
        raise OutputExistsError(f'{out} appeared while preparing; pass --overwrite to replace it.')
      if _exchange(tmp, out):  # one atomic swap; tmp now holds the old run
        shutil.rmtree(tmp, ignore_errors=True)
      else:  # Two renames: `out` is briefly absent, but never a mix of two runs.
        old = pathlib.Path(tempfile.mkdtemp(prefix=f'.{out.name}.old-', dir=out.parent))
        old.rmdir()
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
      tmp.rename(out)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def format_summary(summary: dict) -> str:
  """A plain-text table of the counts (no grades, no ids)."""
  lines = [f'{"rows read":<28}{summary["rows_read"]:>8}',
           f'{"faces found":<28}{summary["faces_found"]:>8}',
           f'{"centre crops (no face)":<28}{summary["centre_crops"]:>8}',
           f'{"used":<28}{summary["used"]:>8}',
           f'{"skipped":<28}{summary["skipped"]:>8}']
  lines += [f'  {code:<26}{n:>8}' for code, n in summary['skipped_by_reason'].items()]
  lines.append(f'classes ({summary["labelling"]})')
  lines += [f'  {name:<26}{n:>8}' for name, n in summary['class_counts'].items()]
  width = max(len(l) for l in lines)
  return '\n'.join(['-' * width] + lines + ['-' * width])


# ---------------------------------------------------------------------------------------------
# CLI

def _define_flags():
  from absl import flags
  flags.DEFINE_string('workbook', None, 'The school workbook (.xlsx).')
  flags.DEFINE_string('out', None, 'Output folder (created; see --overwrite).')
  flags.DEFINE_string('pivot', '4.0', 'Class boundary: a grade (4.0 = pass) or "median".')
  flags.DEFINE_integer('bins', None, 'n quantile classes instead of a pivot.')
  flags.DEFINE_string('sheet', None, 'Sheet name (default: first sheet with id+grade columns).')
  flags.DEFINE_string('id_column', None, 'Header (or column letter) of the anonymous ids.')
  flags.DEFINE_string('grade_column', None, 'Header (or column letter) of the grades.')
  flags.DEFINE_string('photo_column', None, 'Header (or column letter) of the photos.')
  flags.DEFINE_string('group_column', None, 'Header (or letter) of an optional group column '
                      '(cohort, photo session, photographer): CV folds and permutations then '
                      'respect groups.')
  flags.DEFINE_float('grade_min', 1.0, 'Lowest valid grade.')
  flags.DEFINE_float('grade_max', 6.0, 'Highest valid grade.')
  flags.DEFINE_enum('detector', 'hog', ['hog', 'cnn'], 'dlib face detector.')
  flags.DEFINE_integer('upsample', 1, 'Detector upsampling (finds smaller faces, slower).')
  flags.DEFINE_integer('chip_size', 150, 'Chip side in pixels (150 for the dlib ResNet).')
  flags.DEFINE_float('padding', 0.25, 'dlib chip padding.')
  flags.DEFINE_integer('min_side', images.DEFAULT_MIN_SIDE, 'Smallest photo side accepted, px.')
  flags.DEFINE_enum('no_face', 'skip', ['skip', 'centre'], 'Photo without a face: skip or centre crop.')
  flags.DEFINE_enum('multi_face', 'best', ['best', 'largest', 'skip'], 'Photo with several faces.')
  flags.DEFINE_float('multi_face_min_score', 0.5,
                     'Weaker detections do not count as another face for --multi_face=skip.')
  flags.DEFINE_integer('detect_max_side', 1024, 'Search larger photos downscaled to this side.')
  flags.DEFINE_enum('duplicates', 'first', ['first', 'all'],
                    'Repeated id: keep the first row (first) or skip every copy (all).')
  flags.DEFINE_integer('folds', 5, 'Stratified cross-validation folds.')
  flags.DEFINE_integer('seed', 0, 'Seed of the fold assignment.')
  flags.DEFINE_bool('overwrite', False, 'Replace an existing --out (atomically).')
  flags.mark_flags_as_required(['workbook', 'out'])
  return flags.FLAGS


def main(argv) -> None:
  del argv
  from absl import flags, logging
  logging.set_verbosity(logging.WARNING)  # TFDS logs every build step at INFO.
  f = flags.FLAGS
  pivot = f.pivot.strip().lower()
  if pivot != 'median':
    try:
      pivot = float(pivot)
    except ValueError:
      sys.exit(f'error: --pivot must be a grade such as 4.0, or "median"; got {f.pivot!r}')
  o = Options(sheet=f.sheet, id_column=f.id_column, grade_column=f.grade_column,
              photo_column=f.photo_column, group_column=f.group_column, grade_min=f.grade_min, grade_max=f.grade_max,
              pivot=pivot, bins=f.bins, detector=f.detector, upsample=f.upsample,
              chip_size=f.chip_size, padding=f.padding, min_side=f.min_side, no_face=f.no_face,
              multi_face=f.multi_face, multi_face_min_score=f.multi_face_min_score,
              detect_max_side=f.detect_max_side, duplicates=f.duplicates, folds=f.folds, seed=f.seed,
              overwrite=f.overwrite)
  try:
    summary = prepare(f.workbook, f.out, o, progress=_progress_printer())
  except (workbook.WorkbookError, OutputExistsError, ValueError) as e:
    sys.exit(f'error: {e}')
  print(format_summary(summary))
  if not summary['used']:
    sys.exit(f'error: no usable rows; see {f.out}/manifest.csv for the reason of each row.')
  print(f'wrote {f.out} ({summary["seconds"]} s)')


def command() -> None:
  """The ``gradejax.prepare`` command: defines its flags, parses argv, runs :func:`main`."""
  from absl import app
  # Flags are defined only when run as a program, so importing prepare() from another module
  # (which may define --seed etc. itself) cannot clash.
  _define_flags()
  app.run(main)
