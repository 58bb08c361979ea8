"""A folder of photos and a CSV (id, grade, file name): the other input ``prepare`` reads.

Large studies rarely come as one workbook with embedded pictures; they come as image files
and a table naming them (what an extraction of a workbook's pictures writes)::

    id,grade,file
    s001,4.5,s001.jpg
    s002,"3,75",photos/s002.png

:func:`read_folder` turns that into the same :class:`gradejax.data.workbook.Table` the workbook
reader gives, so every check after it (ids, duplicates, grades, photos) is the workbook's.
A row's ``source_row`` is its CSV line number (the header is line 1). Photos are not read
here: each row holds the file's path, and the worker that aligns the photo reads it, so the
parent never holds all the photos in memory.

Headers are matched like the workbook's (case, accents and punctuation folded; the workbook's
id and grade synonyms, and file synonyms such as ``file``, ``file name``, ``path``, ``photo``).
The delimiter (``,``, ``;`` or tab: spreadsheets in many European locales save ``;``) is
detected; the file is read as UTF-8 (with or without BOM), else as Windows-1252.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os
import pathlib

from gradejax.data import workbook

FILE_SYNONYMS = ('file', 'file name', 'filename', 'image file', 'photo file', 'path',
                 'image path', 'photo path', 'file path') + workbook.PHOTO_SYNONYMS
CSV_SUFFIXES = ('.csv', '.tsv')


@dataclasses.dataclass(frozen=True)
class FilePhoto:
  """A photo in a file. ``row`` is the CSV line; ``data`` reads the file when asked."""
  row: int
  path: pathlib.Path
  col: int | None = None
  placement: str = 'file'

  @property
  def part(self) -> str:
    return self.path.name

  @property
  def data(self) -> bytes:
    return self.path.read_bytes()


def _inside(path: pathlib.Path, root: pathlib.Path) -> bool:
  resolved = path.resolve()
  return resolved == root or root in resolved.parents


def is_csv(path: str | os.PathLike) -> bool:
  return pathlib.Path(path).suffix.lower() in CSV_SUFFIXES


def _text(path: pathlib.Path) -> str:
  raw = path.read_bytes()
  try:
    return raw.decode('utf-8-sig')
  except UnicodeDecodeError:
    return raw.decode('cp1252', errors='replace')


def read_folder(csv_path: str | os.PathLike, images_dir: str | os.PathLike | None = None, *,
                id_column: str | None = None, grade_column: str | None = None,
                file_column: str | None = None, allow_outside: bool = False) -> workbook.Table:
  """Reads the CSV's rows; file names are relative to ``images_dir`` (default: the CSV's folder).

  A name that resolves outside that folder (``../x.jpg``, an absolute path, a link pointing
  out) gives its row an ``image_outside_folder`` problem unless ``allow_outside``.

  Raises:
    workbook.WorkbookError: the CSV or the folder is missing, or the header lacks a column.
  """
  csv_path = pathlib.Path(csv_path)
  if not csv_path.is_file():
    raise workbook.WorkbookError(f'{csv_path}: no such file.')
  folder = pathlib.Path(images_dir) if images_dir is not None else csv_path.parent
  if not folder.is_dir():
    raise workbook.WorkbookError(f'{folder}: the photo folder (--images_dir) does not exist.')
  text = _text(csv_path)
  try:
    dialect = csv.Sniffer().sniff(text[:4096], delimiters=',;\t')
  except csv.Error:
    dialect = csv.excel
  reader = csv.reader(io.StringIO(text), dialect)
  header = next(reader, None)
  if not header:
    raise workbook.WorkbookError(f'{csv_path}: empty file; line 1 must be a header such as '
                                 '"id,grade,file".')
  headers = {c + 1: workbook.normalise_header(h) for c, h in enumerate(header)
             if workbook.normalise_header(h)}
  id_col = workbook.find_column(headers, workbook.ID_SYNONYMS, id_column, ())
  grade_col = workbook.find_column(headers, workbook.GRADE_SYNONYMS, grade_column, (id_col,))
  file_col = workbook.find_column(headers, FILE_SYNONYMS, file_column, (id_col, grade_col))
  missing = [what for what, col in (('id', id_col), ('grade', grade_col), ('file name', file_col))
             if col is None]
  if missing:
    raise workbook.WorkbookError(
        f'{csv_path}, line 1: no {" / ".join(missing)} column; header: '
        f'{", ".join(repr(h) for h in header)}. Name the columns e.g. id, grade, file, or pass '
        '--id_column/--grade_column/--photo_column.')
  rows, blank = [], 0
  root = folder.resolve()
  cell = lambda values, c: (values[c - 1].strip() or None) if c - 1 < len(values) else None
  for values in reader:
    line = reader.line_num
    if not any(v.strip() for v in values):
      blank += 1
      continue
    name = cell(values, file_col)
    photo, problem = None, None
    if name is not None:
      photo = FilePhoto(line, folder / name, file_col)
      if not allow_outside and not _inside(photo.path, root):
        photo, problem = None, (
            f'image_outside_folder: the file {name!r} lies outside the photo folder {folder}; '
            'put the photo in it, or pass --images_outside to allow such paths')
    rows.append(workbook.Row(line, cell(values, id_col), cell(values, grade_col), photo,
                             int(photo is not None), photo_problem=problem))
  return workbook.Table(str(csv_path), csv_path.name, 1,
                        {'id': id_col, 'grade': grade_col, 'photo': file_col}, rows, blank)
