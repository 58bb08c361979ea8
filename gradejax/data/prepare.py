r"""Workbook -> aligned face chips, manifest, summary and a TFDS dataset.

  python -m gradejax.prepare --workbook raw/school.xlsx --out data/school-pivot4 \
      [--pivot 4.0|median] [--bins N] [--folds 5] [--seed 0] [--overwrite]

Everything is built in a hidden sibling folder and renamed into place at the end, so ``--out``
holds either nothing, the previous complete run, or this complete run, whatever interrupts the
run (Ctrl-C and SIGTERM remove the half-built folder; after a SIGKILL the next run cleans up and,
if the kill fell between the two renames, puts the previous output back). Each workbook row ends
in ``manifest.csv`` exactly once, ``used`` or ``skipped`` with its reason. ``--check`` prints the
row -> photo mapping and every problem without detecting faces or writing anything.
"""
from __future__ import annotations

import collections
import ctypes
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import sys
import tempfile
import time
from typing import Callable

import numpy as np

from gradejax.data import (faces, folder_input, images, labels, manifest, parallel,
                           photo_quality, workbook)
from gradejax.data.manifest import Entry
from gradejax.options import option
from gradejax import options as optlib

Progress = Callable[[int, int], None]


class OutputExistsError(FileExistsError):
  """``--out`` exists and ``--overwrite`` was not given."""


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
  overwrite: bool = option(False, 'Replace an existing --out (atomically).')

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
  """An id as a safe file name: characters outside [A-Za-z0-9._-] become '_'."""
  stem = re.sub(r'[^A-Za-z0-9._-]', '_', student_id)
  return '_' + stem if stem.startswith('.') else stem


def _ids_and_grades(table: workbook.Table, o: Options) -> list[Entry]:
  """First pass: id and grade checks (cheap), in row order."""
  entries, first_row, stems = [], {}, {}
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
    stem = file_stem(sid)
    if stem in stems:
      e.reason = f'duplicate_id: same file name {stem!r} as the id in row {stems[stem]}'
      continue
    stems[stem] = row.source_row
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
            options: Options = Options(), progress: Progress | None = None,
            workers: int | None = 1, images_dir: str | os.PathLike | None = None) -> dict:
  """Runs the whole preparation; returns the summary dict (also written to summary.json).

  ``workbook_path`` is an .xlsx workbook, or a .csv file (id, grade, file name) naming photos
  in ``images_dir`` (default: the CSV's folder; see :mod:`gradejax.data.folder_input`).
  ``workers`` processes decode and align the photos (None: every core); the output does not
  depend on it.

  Raises:
    workbook.WorkbookError: unreadable workbook, missing sheet or columns.
    OutputExistsError: ``out`` exists and ``options.overwrite`` is False.
    OutputError: ``out`` cannot be written (see :func:`check_output`), or writing failed.
    ValueError: invalid options, or a labelling that cannot be made (e.g. collapsing bins).
  """
  o = options
  _check_options(o)
  out = pathlib.Path(out).absolute()
  for line in clean_leftovers(out):  # first, so a run killed mid-swap gets its output back
    print(line, file=sys.stderr)
  check_output(out, o.overwrite)
  start = time.time()
  table = read_table(workbook_path, o, images_dir)
  entries = _ids_and_grades(table, o)
  rows = {r.source_row: r for r in table.rows}
  todo = [e for e in entries if e.status == 'used']
  chips, conditions = {}, {}
  # Decode, detect and align (and measure the photo conditions) in a pool of `workers`
  # processes; results come back in row order.
  found = parallel.map_photos([parallel.photo_source(rows[e.source_row].photo) for e in todo],
                              parallel.Job(o.face_options(), o.min_side, conditions=True),
                              workers, progress)
  for e, face in zip(todo, found):
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
      'options': dataclasses.asdict(o),
  }


class OutputError(OSError):
  """``--out`` cannot be written (a file in the way, read-only or full disk); says what to do."""


def check_output(out: pathlib.Path, overwrite: bool) -> None:
  """Refuses an ``--out`` that cannot work before any long step runs.

  Raises:
    OutputExistsError: ``out`` exists and ``overwrite`` is False.
    OutputError: a file is in the way, ``out`` is a folder that is not a prepare output (it is
      never replaced: ``--overwrite`` replaces only what prepare wrote), or the nearest
      existing folder above it is not writable.
  """
  for above in [out, *out.parents]:
    if above.exists() or above.is_symlink():
      break
  if above != out and not above.is_dir():
    raise OutputError(f'--out {out}: {above} is a file, not a folder; choose an --out inside a '
                      'folder.')
  if out.exists():
    if not out.is_dir():
      raise OutputError(f'--out {out} is a file, not a folder; remove it or choose another --out.')
    if not overwrite:
      raise OutputExistsError(f'{out} already exists; pass --overwrite to replace it, or choose '
                              'another --out.')
    if any(out.iterdir()) and not ((out / 'manifest.csv').is_file()
                                   or (out / 'summary.json').is_file()):
      raise OutputError(f'--out {out} is a folder prepare did not write (no manifest.csv); '
                        '--overwrite replaces only an earlier prepare output. Choose another '
                        '--out.')
    above = out.parent
  if not os.access(above, os.W_OK | os.X_OK):
    raise OutputError(f'--out {out}: cannot write in {above} (read-only or no permission); '
                      'choose another --out.')


_LEFTOVER = r'\.{name}\.(tmp|old)-(?:(\d+)-)?[A-Za-z0-9_]+'


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def clean_leftovers(out: pathlib.Path) -> list[str]:
  """Removes what an interrupted run left beside ``out``; restores ``out`` if it was moved away.

  Names carry the writer's pid (``.NAME.tmp-PID-xxxx`` is a run being built, ``.NAME.old-PID-xxxx``
  the previous output while the new one is moved in); folders of a process still running are
  left alone. Returns one line per thing done, for the log.
  """
  done = []
  if not out.parent.is_dir():
    return done
  pattern = re.compile(_LEFTOVER.format(name=re.escape(out.name)))
  found = []
  for p in out.parent.iterdir():
    m = pattern.fullmatch(p.name)
    if m and p.is_dir() and not (m.group(2) and int(m.group(2)) != os.getpid()
                                 and _alive(int(m.group(2)))):
      found.append((m.group(1), p))
  olds = sorted((p for kind, p in found if kind == 'old'), key=lambda p: p.stat().st_mtime)
  if olds and not out.exists():
    olds[-1].rename(out)  # The interrupted swap had moved the previous output away.
    done.append(f'restored {out} from {olds[-1].name} (an interrupted run had moved it away)')
  for kind, p in found:
    if p.exists():
      shutil.rmtree(p, ignore_errors=True)
      done.append(f'removed {p.name}, left by an interrupted run')
  return done


def _exchange(a: pathlib.Path, b: pathlib.Path) -> bool:
  """Swaps two paths atomically with Linux renameat2(RENAME_EXCHANGE); False if unsupported."""
  try:
    renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
  except (OSError, AttributeError):
    return False
  at_fdcwd, rename_exchange = -100, 2
  return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


_SIGNALS = tuple(getattr(signal, n) for n in ('SIGINT', 'SIGTERM', 'SIGHUP') if hasattr(signal, n))


def _swap_in(tmp: pathlib.Path, out: pathlib.Path) -> pathlib.Path | None:
  """Moves the finished ``tmp`` to ``out``; returns the folder now holding the old run, if any.

  Interrupt signals are held back for the two renames, so Ctrl-C cannot fall between them (it
  takes effect right after); a SIGKILL or power cut there leaves ``.NAME.old-*``, which the next
  run puts back (:func:`clean_leftovers`). At no moment do ``out``'s contents mix two runs.
  """
  masked = hasattr(signal, 'pthread_sigmask')
  if masked:
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
  try:
    if not out.exists():
      tmp.rename(out)
      return None
    if _exchange(tmp, out):  # one atomic swap; tmp now holds the old run
      return tmp
    return _swap_by_renames(tmp, out)
  finally:
    if masked:
      signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _swap_by_renames(tmp: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
  """Where renameat2 is missing: ``out`` -> ``.NAME.old-PID-*``, then ``tmp`` -> ``out``."""
  old = pathlib.Path(tempfile.mkdtemp(prefix=f'.{out.name}.old-{os.getpid()}-', dir=out.parent))
  old.rmdir()
  out.rename(old)
  tmp.rename(out)
  return old


def _write_atomically(out: pathlib.Path, entries, chips, summary, labelling, o: Options,
                      conditions=()) -> None:
  out.parent.mkdir(parents=True, exist_ok=True)
  clean_leftovers(out)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f'.{out.name}.tmp-{os.getpid()}-', dir=out.parent))
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
    if out.exists() and not o.overwrite:
      raise OutputExistsError(f'{out} appeared while preparing; pass --overwrite to replace it.')
    old = _swap_in(tmp, out)
  except BaseException as e:
    shutil.rmtree(tmp, ignore_errors=True)
    if isinstance(e, OSError) and not isinstance(e, (OutputError, FileExistsError)):
      kept = 'the previous output is untouched' if out.exists() else 'nothing was written'
      where = f' ({e.filename})' if e.filename else ''
      raise OutputError(f'--out {out}: writing failed: {e.strerror or e}{where}; {kept}. '
                        'Free some space, or choose another --out.') from e
    raise
  if old is not None:
    shutil.rmtree(old, ignore_errors=True)


def read_table(workbook_path: str | os.PathLike, o: Options,
               images_dir: str | os.PathLike | None = None) -> workbook.Table:
  """The rows of an .xlsx workbook, or of a CSV (id, grade, file name) naming photos in
  ``images_dir`` (default: the CSV's folder)."""
  if folder_input.is_csv(workbook_path):
    return folder_input.read_folder(workbook_path, images_dir, id_column=o.id_column,
                                    grade_column=o.grade_column, file_column=o.photo_column)
  return workbook.read_workbook(workbook_path, sheet=o.sheet, id_column=o.id_column,
                                grade_column=o.grade_column, photo_column=o.photo_column,
                                group_column=o.group_column)


def check(workbook_path: str | os.PathLike, options: Options = Options(),
          images_dir: str | os.PathLike | None = None) -> tuple[list[Entry], str]:
  """Dry run: reads the workbook and decodes the photos without detecting faces or writing.

  Returns the entries (``status`` 'used' means "ready for face detection") and a text table of
  the row -> photo mapping with every problem, for a researcher to verify before a long run.
  """
  o = options
  _check_options(o)
  table = read_table(workbook_path, o, images_dir)
  entries = _ids_and_grades(table, o)
  rows = {r.source_row: r for r in table.rows}
  first_of: dict[str, int] = {}
  lines = [f'{pathlib.Path(workbook_path).name}: sheet {table.sheet!r}, header row '
           f'{table.header_row}, columns '
           + ', '.join(f'{k}={workbook.column_label(v)}' for k, v in table.columns.items()),
           f'{"row":>6}  {"id":<14}{"photo":<30}outcome']
  for e in entries:
    row = rows[e.source_row]
    photo, notes = '-', []
    if row.photo is not None:
      p = row.photo
      where = getattr(p, 'anchor', '') or (p.part if p.placement == 'file' else
                                           f'{workbook.column_label(p.col)}{p.row}')
      data, reason = parallel.read_source(parallel.photo_source(p))
      image = None
      if data is not None:
        image, reason = images.decode_photo(data, min_side=o.min_side)
      size = f'{image.shape[1]}x{image.shape[0]}' if image is not None else '?'
      photo = f'{where} {p.placement} {size}'
      if data is not None:
        digest = hashlib.sha1(data).hexdigest()
        if digest in first_of:
          notes.append(f'same picture as row {first_of[digest]}')
        first_of.setdefault(digest, e.source_row)
      if reason and e.status == 'used':
        e.status, e.reason = 'skipped', reason
    elif row.photos_in_row:
      photo = f'{row.photos_in_row} picture(s)'
    if row.hidden:
      notes.append('hidden row')
    outcome = 'ready' if e.status == 'used' else e.reason
    lines.append(f'{e.source_row:>6}  {e.id[:13]:<14}{photo:<30}{outcome}'
                 + (f' [{"; ".join(notes)}]' if notes else ''))
  ready = sum(1 for e in entries if e.status == 'used')
  by_reason = collections.Counter(e.reason_code for e in entries if e.status != 'used')
  lines.append(f'{len(entries)} rows: {ready} ready for face detection, {len(entries) - ready} '
               'skipped' + (' (' + ', '.join(f'{k} {n}' for k, n in sorted(by_reason.items()))
                            + ')' if by_reason else '')
               + (f'; {table.blank_rows} blank rows ignored' if table.blank_rows else ''))
  return entries, '\n'.join(lines)


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
  return '\n'.join(['-' * width] + lines + ['-' * width])


# ---------------------------------------------------------------------------------------------
# CLI

@dataclasses.dataclass(frozen=True)
class Command(Options):
  """The ``prepare`` command's options: :class:`Options` plus the paths and the run mode."""
  workbook: str | None = option(None, 'The school workbook (.xlsx), or a CSV (id, grade, file '
                                'name) of photos in --images_dir.', required=True)
  images_dir: str | None = option(None, 'Folder of the photos a CSV --workbook names '
                                  '(default: the CSV\'s folder).')
  workers: int | None = option(None, 'Processes decoding and aligning photos (default: all '
                               'cores); the output is the same for any number.')
  out: str | None = option(None, 'Output folder (created; see --overwrite).')
  check: bool = option(False, 'Dry run: print the row -> photo mapping and every problem, '
                       'without detecting faces or writing anything (--out not needed).')


def _raise_interrupt(signum, frame) -> None:
  raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv) -> None:
  del argv
  from absl import logging
  logging.set_verbosity(logging.WARNING)  # TFDS logs every build step at INFO.
  f = optlib.from_flags(Command)
  o = optlib.narrow(Options, f)
  if f.check:
    try:
      print(check(f.workbook, o, f.images_dir)[1])
    except (workbook.WorkbookError, ValueError) as e:
      sys.exit(f'error: {e}')
    return
  if not f.out:
    sys.exit('error: --out is required (or pass --check for a dry run).')
  # SIGTERM unwinds like Ctrl-C, so the half-built folder is removed and --out is kept.
  signal.signal(signal.SIGTERM, _raise_interrupt)
  try:
    summary = prepare(f.workbook, f.out, o, progress=_progress_printer(), workers=f.workers,
                      images_dir=f.images_dir)
  except (workbook.WorkbookError, OSError, ValueError) as e:
    sys.exit(f'error: {e}')
  except KeyboardInterrupt:
    sys.exit(f'interrupted: {f.out} is as it was before this run (or complete, if the '
             'interrupt came after the last step).')
  print(format_summary(summary))
  if not summary['used']:
    sys.exit(f'error: no usable rows; see {f.out}/manifest.csv for the reason of each row.')
  print(f'wrote {f.out} ({summary["seconds"]} s)')


def command() -> None:
  """The ``gradejax.prepare`` command: defines its flags, parses argv, runs :func:`main`."""
  from absl import app
  # Flags are defined only when run as a program, so importing prepare() from another module
  # (which may define --seed etc. itself) cannot clash.
  optlib.define_flags(Command)
  app.run(main)
