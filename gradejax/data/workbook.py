"""Reads a school's workbook: one row per student with an anonymous id, a grade and a photo.

Cell values come from openpyxl (read-only mode). Photos are read from the xlsx package itself,
because openpyxl silently drops pictures Pillow cannot open, crashes on decompression bombs, and
does not read Excel's newer "Place in Cell" pictures at all. Two placements are understood:

* drawings anchored to a cell (``xl/drawings/drawingN.xml``: ``twoCellAnchor`` /
  ``oneCellAnchor`` use the anchor's top-left cell; ``absoluteAnchor`` is placed by row heights);
* pictures placed in a cell, which Excel stores as rich values::

    sheet   <c r="C2" t="e" vm="1"><v>#VALUE!</v></c>          vm: 1-based
    -> xl/metadata.xml  valueMetadata/bk[vm-1]/rc(t, v)          t: 1-based metadataType (XLRICHVALUE)
    -> futureMetadata[@name=XLRICHVALUE]/bk[v]//xlrd:rvb(i)      i: rich value index
    -> xl/richData/rdrichvalue.xml rv[i] (values ordered by structure rv/@s)
    -> xl/richData/rdrichvaluestructure.xml s[@s]: key _rvRel:LocalImageIdentifier -> n
    -> xl/richData/richValueRel.xml rel[n]/@r:id
    -> xl/richData/_rels/richValueRel.xml.rels -> xl/media/imageK.png

Grades are parsed here too (:func:`parse_grade`), since what a "number" is depends on how
the spreadsheet stored it.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import pathlib
import posixpath
import re
import unicodedata
import warnings
import zipfile
from typing import Any, Iterable, Sequence
from xml.etree import ElementTree as ET

import openpyxl
from openpyxl.utils import column_index_from_string, get_column_letter

NS_MAIN = 'http://schemas.openxmlformats.org/spreadsheetml/2006/main'
NS_REL = 'http://schemas.openxmlformats.org/officeDocument/2006/relationships'
NS_PKG_REL = 'http://schemas.openxmlformats.org/package/2006/relationships'
NS_XDR = 'http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing'
NS_A = 'http://schemas.openxmlformats.org/drawingml/2006/main'
NS_RD = 'http://schemas.microsoft.com/office/spreadsheetml/2017/richdata'
NS_RVREL = 'http://schemas.microsoft.com/office/spreadsheetml/2022/richvaluerel'

OLE_MAGIC = b'\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1'
HEADER_SEARCH_ROWS = 10
EMU_PER_POINT = 12700

ID_SYNONYMS = ('id', 'student id', 'anon id', 'anonymous id', 'anonymised id', 'anonymized id',
               'anonymous student id', 'pseudonym', 'identifier', 'identifiant', 'student code',
               'code', 'matricule', 'student number', 'student no')
GRADE_SYNONYMS = ('grade', 'grades', 'average grade', 'mean grade', 'average', 'grade average',
                  'final grade', 'first year grade', 'mark', 'note', 'notes', 'moyenne',
                  'note moyenne', 'moyenne generale', 'note finale', 'durchschnitt', 'gpa')
PHOTO_SYNONYMS = ('photo', 'photos', 'picture', 'image', 'portrait', 'photograph', 'foto', 'bild',
                  'resume photo', 'cv photo')


class WorkbookError(ValueError):
  """The workbook cannot be read as asked; the message names the file and what to do."""


@dataclasses.dataclass(frozen=True)
class Photo:
  """A picture found in the package. ``row``/``col`` are 1-based sheet coordinates."""
  row: int
  col: int | None
  data: bytes
  part: str
  placement: str  # 'anchored' or 'in_cell'


@dataclasses.dataclass(frozen=True)
class Row:
  """One non-blank data row. ``source_row`` is the 1-based row number Excel shows."""
  source_row: int
  id_value: Any
  grade_value: Any
  photo: Photo | None
  photos_in_row: int
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
# Package-level helpers


def check_package(path: str | pathlib.Path) -> None:
  """Raises :class:`WorkbookError` unless ``path`` looks like a readable .xlsx package."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise WorkbookError(f'{path}: no such file.')
  with open(path, 'rb') as f:
    head = f.read(8)
    f.seek(0)
    blob = f.read(1 << 20) if head == OLE_MAGIC else b''
  if head == OLE_MAGIC:
    if 'EncryptedPackage'.encode('utf-16-le') in blob:
      raise WorkbookError(
          f'{path}: the workbook is password-protected (encrypted). Open it in Excel, remove '
          'the password (File > Info > Protect Workbook > Encrypt with Password: clear it), save '
          'a copy as .xlsx and pass that copy.')
    raise WorkbookError(
        f'{path}: this is an old binary Office file (.xls, Excel 97-2003), not .xlsx. Open it '
        '(removing its password if it has one) and save it as "Excel Workbook (.xlsx)".')
  if not zipfile.is_zipfile(path):
    raise WorkbookError(
        f'{path}: not an Excel .xlsx workbook (an .xlsx file is a zip package; this file is '
        'not). If it is a CSV or another format, open it in Excel and save as .xlsx.')
  try:
    with zipfile.ZipFile(path) as zf:
      names = {n.lower() for n in zf.namelist()}
      if 'mimetype' in names and zf.read('mimetype').startswith(b'application/vnd.oasis'):
        raise WorkbookError(
            f'{path}: an OpenDocument file (.ods), not .xlsx. Save it as .xlsx first.')
      if 'xl/workbook.xml' not in names and not any(n.endswith('workbook.xml') for n in names):
        raise WorkbookError(
            f'{path}: a zip file but not an .xlsx workbook (no xl/workbook.xml inside). '
            'Save the spreadsheet as "Excel Workbook (.xlsx)".')
  except zipfile.BadZipFile as e:
    raise WorkbookError(f'{path}: damaged zip package ({e}); re-save it from Excel.') from e


class _Package:
  """Case-insensitive access to the parts of an open zip package."""

  def __init__(self, zf: zipfile.ZipFile):
    self.zf = zf
    self.names = {n.lower(): n for n in zf.namelist()}

  def has(self, part: str) -> bool:
    return part.lstrip('/').lower() in self.names

  def read(self, part: str) -> bytes:
    return self.zf.read(self.names[part.lstrip('/').lower()])

  def xml(self, part: str) -> ET.Element | None:
    if not self.has(part):
      return None
    try:
      return ET.fromstring(self.read(part))
    except ET.ParseError:
      return None

  def rels(self, part: str) -> dict[str, tuple[str, str]]:
    """Relationships of ``part``: rId -> (type, target part path)."""
    folder, name = posixpath.split(part)
    root = self.xml(posixpath.join(folder, '_rels', name + '.rels'))
    out = {}
    if root is None:
      return out
    for rel in root.iter(f'{{{NS_PKG_REL}}}Relationship'):
      if rel.get('TargetMode') == 'External':
        continue
      target = rel.get('Target', '')
      if target.startswith('/'):
        resolved = target.lstrip('/')
      else:
        resolved = posixpath.normpath(posixpath.join(folder, target))
      out[rel.get('Id')] = (rel.get('Type', ''), resolved)
    return out

  def rel_of_type(self, part: str, suffix: str, default: str | None = None) -> str | None:
    for kind, target in self.rels(part).values():
      if kind.lower().endswith(suffix.lower()):
        return target
    return default if default and self.has(default) else None


def _sheet_parts(pkg: _Package) -> dict[str, str]:
  """Sheet name -> worksheet part path, in workbook order."""
  wb = pkg.xml('xl/workbook.xml')
  rels = pkg.rels('xl/workbook.xml')
  out = {}
  if wb is None:
    return out
  for sheet in wb.iter(f'{{{NS_MAIN}}}sheet'):
    rid = sheet.get(f'{{{NS_REL}}}id')
    if rid in rels:
      out[sheet.get('name')] = rels[rid][1]
  return out


def _cell_ref(ref: str) -> tuple[int, int]:
  m = re.fullmatch(r'\$?([A-Za-z]{1,3})\$?(\d+)', ref or '')
  if not m:
    raise ValueError(ref)
  return int(m.group(2)), column_index_from_string(m.group(1).upper())


def _row_tops(sheet: ET.Element | None) -> tuple[dict[int, float], float]:
  """Row heights in points (explicit ones) and the default height, for absolute anchors."""
  default = 15.0
  heights = {}
  if sheet is None:
    return heights, default
  fmt = sheet.find(f'{{{NS_MAIN}}}sheetFormatPr')
  if fmt is not None and fmt.get('defaultRowHeight'):
    default = float(fmt.get('defaultRowHeight'))
  for row in sheet.iter(f'{{{NS_MAIN}}}row'):
    if row.get('ht') and row.get('r'):
      heights[int(row.get('r'))] = float(row.get('ht'))
  return heights, default


def _row_at(y_emu: int, heights: dict[int, float], default: float) -> int:
  y = y_emu / EMU_PER_POINT
  row = 1
  while row < 1_048_576:
    h = heights.get(row, default)
    if y < h:
      return row
    y -= h
    row += 1
  return row


def _anchored_photos(pkg: _Package, sheet_part: str, sheet: ET.Element | None) -> list[Photo]:
  photos = []
  heights, default = _row_tops(sheet)
  for kind, drawing in pkg.rels(sheet_part).values():
    if not kind.endswith('/drawing'):
      continue
    root = pkg.xml(drawing)
    if root is None:
      continue
    media = pkg.rels(drawing)
    for anchor in root:
      tag = anchor.tag.rsplit('}', 1)[-1]
      frm = anchor.find(f'{{{NS_XDR}}}from')
      if tag in ('twoCellAnchor', 'oneCellAnchor') and frm is not None:
        row = int(frm.findtext(f'{{{NS_XDR}}}row', '0')) + 1
        col = int(frm.findtext(f'{{{NS_XDR}}}col', '0')) + 1
      elif tag == 'absoluteAnchor' and anchor.find(f'{{{NS_XDR}}}pos') is not None:
        row = _row_at(int(anchor.find(f'{{{NS_XDR}}}pos').get('y', '0')), heights, default)
        col = None
      else:
        continue
      for blip in anchor.iter(f'{{{NS_A}}}blip'):
        rid = blip.get(f'{{{NS_REL}}}embed')
        if rid in media and pkg.has(media[rid][1]):
          photos.append(Photo(row, col, pkg.read(media[rid][1]), media[rid][1], 'anchored'))
  return photos


def _local_name(tag: str) -> str:
  return tag.rsplit('}', 1)[-1]


def _in_cell_photos(pkg: _Package, sheet: ET.Element | None) -> list[Photo]:
  """Pictures placed in cells (Excel 365 rich values); see the module docstring."""
  if sheet is None:
    return []
  cells = [(c.get('r'), int(c.get('vm'))) for c in sheet.iter(f'{{{NS_MAIN}}}c')
           if c.get('vm', '').isdigit()]
  if not cells:
    return []
  wb = 'xl/workbook.xml'
  meta = pkg.xml(pkg.rel_of_type(wb, '/sheetMetadata', 'xl/metadata.xml') or '')
  values = pkg.xml(pkg.rel_of_type(wb, '/rdRichValue', 'xl/richData/rdrichvalue.xml') or '')
  structs = pkg.xml(pkg.rel_of_type(
      wb, '/rdRichValueStructure', 'xl/richData/rdrichvaluestructure.xml') or '')
  relpart = pkg.rel_of_type(wb, '/richValueRel', 'xl/richData/richValueRel.xml')
  relroot = pkg.xml(relpart or '')
  if meta is None or values is None or structs is None or relroot is None:
    return []
  type_names = [t.get('name') for t in meta.iter(f'{{{NS_MAIN}}}metadataType')]
  rich_type = type_names.index('XLRICHVALUE') + 1 if 'XLRICHVALUE' in type_names else None
  future = []
  for fm in meta.iter(f'{{{NS_MAIN}}}futureMetadata'):
    if fm.get('name') == 'XLRICHVALUE':
      for bk in fm.findall(f'{{{NS_MAIN}}}bk'):
        rvb = next(bk.iter(f'{{{NS_RD}}}rvb'), None)
        future.append(int(rvb.get('i')) if rvb is not None else None)
  value_meta = []
  vm_root = meta.find(f'{{{NS_MAIN}}}valueMetadata')
  for bk in (vm_root.findall(f'{{{NS_MAIN}}}bk') if vm_root is not None else []):
    rc = bk.find(f'{{{NS_MAIN}}}rc')
    value_meta.append((int(rc.get('t')), int(rc.get('v'))) if rc is not None else None)
  keys = [[k.get('n') for k in s.findall(f'{{{NS_RD}}}k')] for s in structs.findall(f'{{{NS_RD}}}s')]
  rich = [(int(rv.get('s', '0')), [v.text for v in rv.findall(f'{{{NS_RD}}}v')])
          for rv in values.findall(f'{{{NS_RD}}}rv')]
  rel_ids = [r.get(f'{{{NS_REL}}}id') for r in relroot.iter(f'{{{NS_RVREL}}}rel')]
  targets = pkg.rels(relpart)
  photos = []
  for ref, vm in cells:
    try:
      t, v = value_meta[vm - 1]
      if rich_type is not None and t != rich_type:
        continue
      s, vals = rich[future[v]]
      n = int(vals[keys[s].index('_rvRel:LocalImageIdentifier')])
      part = targets[rel_ids[n]][1]
      row, col = _cell_ref(ref)
      photos.append(Photo(row, col, pkg.read(part), part, 'in_cell'))
    except (IndexError, KeyError, ValueError, TypeError):
      continue  # Not a picture (other rich values exist, e.g. stock data types).
  return photos


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


def _find_column(headers: dict[int, str], synonyms: Sequence[str], override: str | None,
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
  else:
    return None, f'grade_not_a_number: a {type(value).__name__} value is not a number'
  if not math.isfinite(grade):
    return None, 'grade_not_a_number: not a finite number'
  lo, hi = scale
  if not lo <= grade <= hi:
    return None, f'grade_out_of_range: {grade:g} is outside the scale {lo:g}-{hi:g}'
  return grade, None


# ---------------------------------------------------------------------------------------------
# The reader


def read_workbook(path: str | pathlib.Path, *, sheet: str | None = None,
                  id_column: str | None = None, grade_column: str | None = None,
                  photo_column: str | None = None, group_column: str | None = None) -> Table:
  """Reads the student rows of one sheet (the first sheet with the needed columns by default).

  Columns are found by header name (case-insensitive synonyms; the ``*_column`` arguments name
  the header, or a column letter, explicitly) in the first ten rows. The photo column is
  optional: without it, any picture in the row is taken. ``group_column`` (header or letter)
  names an optional group column, read only when given. Fully blank rows are left out and
  counted in ``blank_rows``.

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
    candidates = [sheet] if sheet is not None else names
    problems = []
    for name in candidates:
      ws = wb[name]
      # Read-only mode trusts the sheet's <dimension> tag, which some writers get wrong.
      ws.reset_dimensions()
      values = [list(r) for r in ws.iter_rows(values_only=True)]
      found = _locate_header(values, id_column, grade_column, photo_column, group_column)
      if isinstance(found, str):
        problems.append(f'sheet {name!r}: {found}')
        continue
      header_row, columns = found
      with zipfile.ZipFile(path) as zf:
        photos = _photos(_Package(zf), name)
      return _rows(str(path), name, values, header_row, columns, photos)
    hint = ('Pass --id_column/--grade_column (and --photo_column) with the header names, '
            'or --sheet.')
    raise WorkbookError(f'{path}: no id and grade columns found. ' + '; '.join(problems)
                        + '. ' + hint)
  finally:
    wb.close()


def _locate_header(values: list[list[Any]], id_column, grade_column, photo_column,
                   group_column=None):
  seen = []
  for r, row in enumerate(values[:HEADER_SEARCH_ROWS]):
    headers = {c + 1: normalise_header(v) for c, v in enumerate(row) if normalise_header(v)}
    if not headers:
      continue
    seen.append([str(row[c - 1]).strip() for c in headers])
    id_col = _find_column(headers, ID_SYNONYMS, id_column, ())
    grade_col = _find_column(headers, GRADE_SYNONYMS, grade_column, (id_col,))
    if id_col and grade_col:
      used = (id_col, grade_col)
      photo_col = _find_column(headers, PHOTO_SYNONYMS, photo_column, used)
      if photo_column and photo_col is None:
        return f'no column {photo_column!r} (headers: {", ".join(seen[-1])})'
      columns = {'id': id_col, 'grade': grade_col, 'photo': photo_col}
      if group_column:
        columns['group'] = _find_column(headers, (), group_column, used)
        if columns['group'] is None:
          return f'no group column {group_column!r} (headers: {", ".join(seen[-1])})'
      return r + 1, columns
  wanted = [w for w in (id_column, grade_column) if w]
  listing = ' | '.join(', '.join(repr(h) for h in hs) for hs in seen) or 'none (the sheet is empty)'
  want = (f'columns {", ".join(map(repr, wanted))} not found' if wanted else
          'no header row with an id column (e.g. "id", "student id") and a grade column '
          '(e.g. "grade", "average grade", "note", "moyenne")')
  return f'{want}; headers found in the first {HEADER_SEARCH_ROWS} rows: {listing}'


def _photos(pkg: _Package, sheet_name: str) -> list[Photo]:
  part = _sheet_parts(pkg).get(sheet_name)
  if part is None:
    return []
  sheet = pkg.xml(part)
  return _anchored_photos(pkg, part, sheet) + _in_cell_photos(pkg, sheet)


def _rows(path: str, sheet: str, values: list[list[Any]], header_row: int,
          columns: dict[str, int | None], photos: list[Photo]) -> Table:
  by_row: dict[int, list[Photo]] = {}
  for p in photos:
    by_row.setdefault(p.row, []).append(p)
  last = max([len(values)] + [p.row for p in photos])
  rows, blank = [], 0

  def cell(r: int, c: int | None) -> Any:
    if c is None or r - 1 >= len(values) or c - 1 >= len(values[r - 1]):
      return None
    v = values[r - 1][c - 1]
    return None if isinstance(v, str) and not v.strip() else v

  for r in range(header_row + 1, last + 1):
    here = by_row.get(r, [])
    row_values = values[r - 1] if r - 1 < len(values) else []
    in_cell_cols = {p.col for p in here if p.placement == 'in_cell'}
    # In-cell pictures read as '#VALUE!' error values; they are the photo, not data.
    non_blank = [v for c, v in enumerate(row_values)
                 if v is not None and str(v).strip() and c + 1 not in in_cell_cols]
    if not non_blank and not here:
      blank += 1
      continue
    photo = None
    if here:
      photo_col = columns['photo']
      # Prefer the photo column, then the nearest column; ties keep package order.
      photo = min(here, key=lambda p: (0 if p.col == photo_col else 1,
                                       abs((p.col or 0) - (photo_col or 0))))
    grade = cell(r, columns['grade'])
    if columns['grade'] in in_cell_cols:
      grade = None
    rows.append(Row(r, cell(r, columns['id']), grade, photo, len(here),
                    cell(r, columns.get('group'))))
  return Table(path, sheet, header_row, columns, rows, blank)


def column_label(col: int | None) -> str:
  return get_column_letter(col) if col else '-'
