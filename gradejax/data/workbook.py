"""Reads a school's workbook: one row per student with an anonymous id, a grade and a photo.

Cell values come from openpyxl (read-only mode). Photos are read from the xlsx package itself
(:mod:`gradejax.data.pictures`), because openpyxl silently drops pictures Pillow cannot open,
crashes on decompression bombs, and does not read Excel's newer "Place in Cell" pictures at
all; which row owns each picture is decided in :mod:`gradejax.data.ownership`; the package
checks (format, zip bombs) are :mod:`gradejax.data.package`.

Grades are parsed here too (:func:`parse_grade`), since what a "number" is depends on how
the spreadsheet stored it; numeric ids are read from the cell's stored text, so a long number
keeps its digits.
"""
from __future__ import annotations

import dataclasses
import datetime
import decimal
import math
import numbers
import pathlib
import re
import unicodedata
import warnings
import zipfile
from typing import Any, Iterable, Sequence

import openpyxl
from openpyxl.utils import column_index_from_string, get_column_letter

from gradejax.data import ownership
from gradejax.data.package import (NS_MAIN, Package, WorkbookError, cell_ref, check_package,
                                   sheet_parts)
from gradejax.data.pictures import Layout, Photo, anchored_photos, in_cell_photos

__all__ = ['WorkbookError', 'Photo', 'Row', 'Table', 'check_package', 'read_workbook',
           'parse_id', 'parse_grade', 'normalise_header', 'column_label']

HEADER_SEARCH_ROWS = 10
# With --id_column/--grade_column naming the headers, the header may lie this far down.
NAMED_HEADER_SEARCH_ROWS = 1000

ID_SYNONYMS = ('id', 'student id', 'anon id', 'anonymous id', 'anonymised id', 'anonymized id',
               'anonymous student id', 'pseudonym', 'identifier', 'identifiant', 'student code',
               'code', 'matricule', 'student number', 'student no')
GRADE_SYNONYMS = ('grade', 'grades', 'average grade', 'mean grade', 'average', 'grade average',
                  'final grade', 'first year grade', 'mark', 'note', 'notes', 'moyenne',
                  'note moyenne', 'moyenne generale', 'note finale', 'durchschnitt', 'gpa')
PHOTO_SYNONYMS = ('photo', 'photos', 'picture', 'image', 'portrait', 'photograph', 'foto', 'bild',
                  'resume photo', 'cv photo')


@dataclasses.dataclass(frozen=True)
class Row:
  """One non-blank data row. ``source_row`` is the 1-based row number Excel shows."""
  source_row: int
  id_value: Any
  grade_value: Any
  photo: Photo | None
  photos_in_row: int
  hidden: bool = False  # the row is hidden in the workbook (hidden rows are read like others)
  # Why the row's photo, id or grade cannot be trusted ('code: detail'), or None.
  photo_problem: str | None = None
  id_problem: str | None = None
  grade_problem: str | None = None
  group_value: Any = None  # the optional group column (cohort, photo session, photographer)


@dataclasses.dataclass(frozen=True)
class Table:
  path: str
  sheet: str
  header_row: int
  columns: dict[str, int | None]  # 'id', 'grade', 'photo'[, 'group'] -> 1-based column or None
  rows: list[Row]
  blank_rows: int


# ---------------------------------------------------------------------------------------------
# Headers and values


def normalise_header(text: Any) -> str:
  """'  Average_Grade ' -> 'average grade'; accents and punctuation folded away."""
  if text is None:
    return ''
  s = unicodedata.normalize('NFKD', str(text))
  s = ''.join(ch for ch in s if not unicodedata.combining(ch)).lower()
  s = re.sub(r'[\s_\-./:()#°]+', ' ', s)
  return s.strip()


def find_column(headers: dict[int, str], synonyms: Sequence[str], override: str | None,
                 used: Iterable[int]) -> int | None:
  if override:
    want = normalise_header(override)
    for col, h in headers.items():
      if h == want:
        return col
    if re.fullmatch(r'[A-Za-z]{1,3}', override.strip()):
      return column_index_from_string(override.strip().upper())
    return None
  for syn in synonyms:  # Earlier synonyms are stronger ('grade' beats 'note').
    for col, h in headers.items():
      if h == syn and col not in used:
        return col
  return None


def parse_id(value: Any) -> str | None:
  """Cell value -> id string; floats holding integers lose their '.0'."""
  if value is None:
    return None
  if isinstance(value, float) and value.is_integer():
    value = int(value)
  s = str(value).strip()
  return s or None


def parse_grade(value: Any, scale: tuple[float, float] = (1.0, 6.0)) -> tuple[float | None, str | None]:
  """Cell value -> (grade, None) or (None, reason).

  Accepts numbers, numeric strings and comma decimals ('4,5'); the grade must lie in
  ``scale`` (inclusive). Reasons start with a short code (``missing_grade``,
  ``grade_not_a_number``, ``grade_out_of_range``) used for the summary counts.
  """
  if value is None or (isinstance(value, str) and not value.strip()):
    return None, 'missing_grade: the grade cell is empty'
  if isinstance(value, bool):
    return None, f'grade_not_a_number: {value!r} is a boolean'
  if isinstance(value, numbers.Real):
    grade = float(value)
  elif isinstance(value, str):
    s = value.strip().replace('\u00a0', '').replace(' ', '')
    if re.fullmatch(r'[+-]?(\d+([.,]\d*)?|[.,]\d+)', s):
      grade = float(s.replace(',', '.'))
    else:
      return None, f'grade_not_a_number: {value.strip()[:40]!r} is not a number'
  elif isinstance(value, (datetime.date, datetime.time, datetime.timedelta)):
    return None, (f'grade_not_a_number: {value} is a date or time (the cell is formatted as a '
                  'date); format the grade column as Number and check the values')
  else:
    return None, f'grade_not_a_number: a {type(value).__name__} value is not a number'
  if not math.isfinite(grade):
    return None, 'grade_not_a_number: not a finite number'
  lo, hi = scale
  if not lo <= grade <= hi:
    return None, f'grade_out_of_range: {grade:g} is outside the scale {lo:g}-{hi:g}'
  return grade, None


# Integers above this are not exact in a spreadsheet's double: an id stored so lost digits.
EXACT_INTEGER = 10 ** 15


def numeric_id(text: str) -> tuple[str | None, str | None]:
  """The stored text of a numeric id cell -> (id, None), or (None, reason) when the number
  cannot be the id that was typed (its digits were lost: 1.2345678901234567E+19)."""
  try:
    d = decimal.Decimal(text.strip())
  except decimal.InvalidOperation:
    return text.strip() or None, None
  if not d.is_finite():
    return None, f'id_not_exact: the id cell holds {text.strip()!r}, not an id'
  if re.fullmatch(r'[+-]?\d+', text.strip()):
    return str(int(d)), None  # an integer written out in full keeps every digit
  if abs(d) >= EXACT_INTEGER:
    return None, (f'id_not_exact: the id is stored as the number {text.strip()}, which has lost '
                  'digits (spreadsheets keep 15); format the id column as Text and type the '
                  'ids again')
  if d == d.to_integral_value():
    return str(int(d)), None
  return text.strip(), None



# ---------------------------------------------------------------------------------------------
# The reader


def _is_grid(ws) -> bool:
  """Whether an openpyxl sheet is a grid of cells (a chartsheet is a chart, nothing else)."""
  return hasattr(ws, 'iter_rows')


def read_workbook(path: str | pathlib.Path, *, sheet: str | None = None,
                  id_column: str | None = None, grade_column: str | None = None,
                  photo_column: str | None = None, group_column: str | None = None) -> Table:
  """Reads the student rows of one sheet (the first sheet with the needed columns by default).

  Columns are found by header name (case-insensitive synonyms; the ``*_column`` arguments name
  the header, or a column letter, explicitly) in the first ten rows, or the first thousand when
  ``id_column``/``grade_column`` are given. The photo column is optional: without it, any
  picture in the row is taken. ``group_column`` (header or letter) names an optional group
  column, read only when given. Fully blank rows are left out and counted in ``blank_rows``.
  Chartsheets are skipped (named in the message when no sheet has the columns).

  Raises:
    WorkbookError: the file is missing, not an xlsx, encrypted, or lacks the sheet/columns.
  """
  path = pathlib.Path(path)
  check_package(path)
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')  # openpyxl warns about styles/extensions it skips.
      wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
  except Exception as e:  # openpyxl raises many types on malformed packages.
    raise WorkbookError(f'{path}: cannot be read as an .xlsx workbook ({type(e).__name__}: {e}). '
                        'Re-save it from Excel as .xlsx.') from e
  try:
    names = wb.sheetnames
    if sheet is not None and sheet not in names:
      raise WorkbookError(f'{path}: no sheet named {sheet!r}; sheets found: '
                          + ', '.join(repr(n) for n in names) + '. Pass --sheet with one of them.')
    grids = [n for n in names if _is_grid(wb[n])]
    if sheet is not None and sheet not in grids:
      raise WorkbookError(f'{path}: the sheet {sheet!r} is a chart sheet, not a grid of cells; '
                          'pass --sheet with the sheet of the student list (sheets with cells: '
                          + (', '.join(repr(n) for n in grids) or 'none') + ').')
    candidates = [sheet] if sheet is not None else names
    problems = []
    for name in candidates:
      ws = wb[name]
      if not _is_grid(ws):
        problems.append(f'sheet {name!r} is a chart sheet (skipped)')
        continue
      # Read-only mode trusts the sheet's <dimension> tag, which some writers get wrong.
      ws.reset_dimensions()
      values = [list(r) for r in ws.iter_rows(values_only=True)]
      found = _locate_header(values, id_column, grade_column, photo_column, group_column)
      if isinstance(found, str):
        problems.append(f'sheet {name!r}: {found}')
        continue
      header_row, columns = found
      with zipfile.ZipFile(path) as zf:
        extras = _sheet_extras(Package(zf), name, columns['id'])
      return _rows(str(path), name, values, header_row, columns, extras)
    hint = ('Pass --id_column/--grade_column (and --photo_column) with the header names (the '
            f'header may then lie anywhere in the first {NAMED_HEADER_SEARCH_ROWS} rows), '
            'or --sheet.')
    raise WorkbookError(f'{path}: no id and grade columns found. ' + '; '.join(problems)
                        + '. ' + hint)
  finally:
    wb.close()


def _locate_header(values: list[list[Any]], id_column, grade_column, photo_column,
                   group_column=None):
  seen = []
  depth = NAMED_HEADER_SEARCH_ROWS if (id_column or grade_column) else HEADER_SEARCH_ROWS
  for r, row in enumerate(values[:depth]):
    headers = {c + 1: normalise_header(v) for c, v in enumerate(row) if normalise_header(v)}
    if not headers:
      continue
    seen.append([str(row[c - 1]).strip() for c in headers])
    id_col = find_column(headers, ID_SYNONYMS, id_column, ())
    grade_col = find_column(headers, GRADE_SYNONYMS, grade_column, (id_col,))
    if id_col and grade_col:
      used = (id_col, grade_col)
      photo_col = find_column(headers, PHOTO_SYNONYMS, photo_column, used)
      if photo_column and photo_col is None:
        return f'no column {photo_column!r} (headers: {", ".join(seen[-1])})'
      columns = {'id': id_col, 'grade': grade_col, 'photo': photo_col}
      if group_column:
        columns['group'] = find_column(headers, (), group_column, used)
        if columns['group'] is None:
          return f'no group column {group_column!r} (headers: {", ".join(seen[-1])})'
      return r + 1, columns
  wanted = [w for w in (id_column, grade_column) if w]
  listing = (' | '.join(', '.join(repr(h) for h in hs) for hs in seen[:HEADER_SEARCH_ROWS])
             or 'none (the sheet is empty)')
  want = (f'columns {", ".join(map(repr, wanted))} not found' if wanted else
          'no header row with an id column (e.g. "id", "student id") and a grade column '
          '(e.g. "grade", "average grade", "note", "moyenne")')
  return f'{want}; headers found in the first {depth} rows: {listing}'


@dataclasses.dataclass
class _SheetExtras:
  """What openpyxl's read-only values do not say: pictures, row geometry and hidden rows,
  formula cells, merged ranges, the stored text of numeric id cells."""
  photos: list[Photo]
  rows: Layout
  formulas: dict[tuple[int, int], tuple[str, bool]]  # (row, col) -> (formula, has a saved result)
  merged: list[tuple[int, int, int, int]]  # (min_row, min_col, max_row, max_col)
  stale_results: bool  # the workbook asks to be recalculated on load (written by a library)
  id_text: dict[int, str] = dataclasses.field(default_factory=dict)  # row -> numeric id's text


def _sheet_extras(pkg: Package, sheet_name: str, id_col: int | None = None) -> _SheetExtras:
  part = sheet_parts(pkg).get(sheet_name)
  sheet = pkg.xml(part) if part is not None else None
  rows = Layout(sheet)
  if sheet is None:
    return _SheetExtras([], rows, {}, [], False)
  formulas, id_text = {}, {}
  for c in sheet.iter(f'{{{NS_MAIN}}}c'):
    f = c.find(f'{{{NS_MAIN}}}f')
    v = c.find(f'{{{NS_MAIN}}}v')
    if f is None and (v is None or c.get('t', 'n') != 'n'):
      continue
    try:
      ref = cell_ref(c.get('r'))
    except ValueError:
      continue
    if f is not None:
      formulas[ref] = (f.text or '', v is not None and bool((v.text or '').strip()))
    elif ref[1] == id_col and v.text:
      id_text[ref[0]] = v.text
  merged = []
  for m in sheet.iter(f'{{{NS_MAIN}}}mergeCell'):
    try:
      a, b = (cell_ref(x) for x in m.get('ref', '').split(':'))
    except ValueError:
      continue
    merged.append((min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])))
  wb = pkg.xml('xl/workbook.xml')
  calc = wb.find(f'{{{NS_MAIN}}}calcPr') if wb is not None else None
  stale = calc is not None and calc.get('fullCalcOnLoad', '').lower() in ('1', 'true')
  photos = anchored_photos(pkg, part, rows) + in_cell_photos(pkg, sheet)
  return _SheetExtras(photos, rows, formulas, merged, stale, id_text)


def _cell_problem(field: str, r: int, c: int | None, extras: _SheetExtras,
                  value: Any) -> str | None:
  """Why the id or grade cell (``field``) of row ``r`` cannot be trusted, or None."""
  if c is None:
    return None
  ref = f'{get_column_letter(c)}{r}'
  for r0, c0, r1, c1 in extras.merged:
    if r0 <= r <= r1 and c0 <= c <= c1 and r1 > r0:
      return (f'merged_cell: the {field} cell {ref} is part of the merged range '
              f'{get_column_letter(c0)}{r0}:{get_column_letter(c1)}{r1} shared by rows {r0}-{r1}; '
              'unmerge it and give each row its own value')
  if (r, c) in extras.formulas:
    formula, saved = extras.formulas[(r, c)]
    if not saved or extras.stale_results:
      why = ('has no saved result' if not saved else
             'has a saved result the workbook itself marks as out of date (it asks to be '
             'recalculated on opening, as files written by libraries do)')
      return (f'{field}_formula_not_calculated: the {field} cell {ref} holds the formula '
              f'={formula[:40]} and {why}; open the workbook in Excel or LibreOffice and save it '
              'again, or paste the values')
  return None




def _lost_in_cell_picture(r: int, photo: Photo, values: list[list[Any]],
                          photo_col: int | None) -> str | None:
  """A reason when row ``r``'s photo cell reads #VALUE! (its picture placed in the cell was
  dropped by a program that cannot keep such pictures) but another picture lies in the row."""
  row_values = values[r - 1] if r - 1 < len(values) else []
  cols = [photo_col] if photo_col else range(1, len(row_values) + 1)
  for c in cols:
    if c - 1 < len(row_values) and row_values[c - 1] == '#VALUE!' and photo.placement != 'in_cell':
      return (f'photo_uncertain: the cell {get_column_letter(c)}{r} reads #VALUE! (a picture '
              'placed in the cell that a program could not keep) and the picture lying in the '
              f'row (at {photo.anchor}) may be another one; insert the photo over the cell again')
  return None


def _rows(path: str, sheet: str, values: list[list[Any]], header_row: int,
          columns: dict[str, int | None], extras: _SheetExtras) -> Table:
  photos, geometry = extras.photos, extras.rows
  in_cell: dict[int, set[int]] = {}
  for p in photos:
    if p.placement == 'in_cell':
      in_cell.setdefault(p.row, set()).add(p.col)

  def non_blank(r: int) -> bool:
    # In-cell pictures read as '#VALUE!' error values; they are the photo, not data.
    row_values = values[r - 1] if r - 1 < len(values) else []
    return any(v is not None and str(v).strip() and c + 1 not in in_cell.get(r, ())
               for c, v in enumerate(row_values))

  data_rows = {r for r in range(header_row + 1, len(values) + 1) if non_blank(r)}
  owned, ambiguous = ownership.assign_photos(photos, geometry, data_rows, header_row + 1,
                                             columns['photo'])
  last = max([len(values)] + list(owned) + list(ambiguous))
  doubts = ownership.hidden_row_doubts(owned, ambiguous, geometry.hidden, data_rows, header_row)
  rows, blank = [], 0

  def cell(r: int, c: int | None) -> Any:
    if c is None or r - 1 >= len(values) or c - 1 >= len(values[r - 1]):
      return None
    v = values[r - 1][c - 1]
    return None if isinstance(v, str) and not v.strip() else v

  for r in range(header_row + 1, last + 1):
    here = owned.get(r, [])
    if r not in data_rows and not here and r not in ambiguous:
      blank += 1
      continue
    photo, problem = ownership.choose_photo(r, here, columns['photo'], geometry)
    problem = ambiguous.get(r) or problem or doubts.get(r)
    if photo is not None and not problem:
      problem = _lost_in_cell_picture(r, photo, values, columns['photo'])
    if problem:
      photo = None
    elif photo is None and columns['photo'] and cell(r, columns['photo']) == '#VALUE!':
      problem = (f'no_photo: the photo cell {get_column_letter(columns["photo"])}{r} holds '
                 '#VALUE!, which is what a picture placed in a cell (Excel\'s "Place in Cell") '
                 'becomes in a program that cannot keep it; insert the picture over the cell '
                 'again')
    grade = cell(r, columns['grade'])
    if columns['grade'] in in_cell.get(r, ()):
      grade = None
    id_value, id_problem = cell(r, columns['id']), None
    if r in extras.id_text:  # a number: its stored text, so no digit is lost or invented
      id_value, id_problem = numeric_id(extras.id_text[r])
    rows.append(Row(r, id_value, grade, photo, len(here),
                    hidden=r in geometry.hidden, photo_problem=problem,
                    id_problem=(_cell_problem('id', r, columns['id'], extras, None)
                                or id_problem),
                    grade_problem=_cell_problem('grade', r, columns['grade'], extras, grade),
                    group_value=cell(r, columns.get('group'))))
  return Table(path, sheet, header_row, columns, rows, blank)


def column_label(col: int | None) -> str:
  return get_column_letter(col) if col else '-'


# Kept importable under their former names (tests and the folder input use them).
_find_column = find_column
