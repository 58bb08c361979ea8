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
import datetime
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

import numpy as np
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
  # Where the picture lies, for anchored ones: its vertical extent in points from the top of the
  # sheet, the columns it covers (1-based) and the cell of its top-left anchor ('C2').
  span: tuple[float, float] | None = None
  cols: tuple[int, ...] = ()
  anchor: str = ''


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
      if 'xl/workbook.bin' in names:
        raise WorkbookError(
            f'{path}: an Excel binary workbook (.xlsb), not .xlsx. Open it in Excel and save it '
            'as "Excel Workbook (.xlsx)".')
      _check_sizes(path, zf)
      if 'xl/workbook.xml' not in names and not any(n.endswith('workbook.xml') for n in names):
        raise WorkbookError(
            f'{path}: a zip file but not an .xlsx workbook (no xl/workbook.xml inside). '
            'Save the spreadsheet as "Excel Workbook (.xlsx)".')
  except zipfile.BadZipFile as e:
    raise WorkbookError(f'{path}: damaged zip package ({e}); re-save it from Excel.') from e


# A zip bomb (e.g. a sharedStrings.xml of gigabytes that compresses to a few MB) would exhaust
# memory in the XML parser: parts are refused above these sizes. Real school workbooks are far
# below (a 1000-row sheet is ~100 KB of XML; photos are already compressed, ratio ~1).
MAX_PART_BYTES = 512 << 20
MAX_PACKAGE_BYTES = 2 << 30
MAX_RATIO = 200  # uncompressed / compressed, for parts above 16 MiB


def _check_sizes(path: pathlib.Path, zf: zipfile.ZipFile) -> None:
  total = 0
  for info in zf.infolist():
    total += info.file_size
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > MAX_PART_BYTES or (info.file_size > 16 << 20 and ratio > MAX_RATIO):
      raise WorkbookError(
          f'{path}: the part {info.filename} would unpack to {info.file_size / 2**20:.0f} MiB '
          f'(compressed {ratio:.0f}x); refused as a possible zip bomb. If the workbook is '
          'genuine, open it in Excel and save a copy as .xlsx.')
  if total > MAX_PACKAGE_BYTES:
    raise WorkbookError(f'{path}: the package would unpack to {total / 2**30:.1f} GiB; refused '
                        'as a possible zip bomb.')


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


class _Rows:
  """Row geometry of a sheet: row r spans [top(r), top(r + 1)) points from the sheet's top.

  Heights are the stored ones (``ht``, else ``defaultRowHeight``), also for hidden rows: an
  anchor names its rows, and shares of a picture are measured on the rows as laid out.
  """

  def __init__(self, sheet: ET.Element | None):
    self.default = 15.0
    self.heights: dict[int, float] = {}
    self.hidden: set[int] = set()
    self._tops = np.zeros(2)
    if sheet is None:
      return
    fmt = sheet.find(f'{{{NS_MAIN}}}sheetFormatPr')
    if fmt is not None and fmt.get('defaultRowHeight'):
      self.default = float(fmt.get('defaultRowHeight'))
    for row in sheet.iter(f'{{{NS_MAIN}}}row'):
      if not row.get('r', '').isdigit():
        continue
      r = int(row.get('r'))
      if row.get('ht'):
        self.heights[r] = float(row.get('ht'))
      if row.get('hidden', '').lower() in ('1', 'true'):
        self.hidden.add(r)

  def height(self, r: int) -> float:
    return self.heights.get(r, self.default)

  def _grow(self, n: int) -> None:
    h = np.full(n, self.default)
    h[0] = 0.0
    for row, ht in self.heights.items():
      if row < n:
        h[row] = ht
    self._tops = np.concatenate([[0.0], np.cumsum(h)])  # _tops[r] = sum of rows 1..r-1

  def top(self, r: int) -> float:
    """Points from the sheet's top to the top of 1-based row ``r``."""
    if r >= len(self._tops):
      self._grow(max(r + 1, 2 * len(self._tops), max(self.heights, default=0) + 2))
    return float(self._tops[r])

  def at(self, y: float) -> int:
    """The 1-based row holding the point ``y`` (points from the top)."""
    while self._tops[-1] <= y and len(self._tops) < 1_048_578:
      self._grow(2 * len(self._tops))
    return max(1, int(np.searchsorted(self._tops, y, side='right')) - 1)

  def overlaps(self, span: tuple[float, float]) -> dict[int, float]:
    """Row -> points of ``span`` inside it (rows it touches only)."""
    top, bottom = span
    out, r = {}, self.at(top)
    while r < 1_048_576 and self.top(r) < bottom:
      out[r] = min(bottom, self.top(r + 1)) - max(top, self.top(r))
      r += 1
    return out


def _emu(node: ET.Element | None, tag: str) -> int:
  text = node.findtext(f'{{{NS_XDR}}}{tag}', '0') if node is not None else '0'
  try:
    return int(float(text))
  except ValueError:
    return 0


def _anchor_span(anchor: ET.Element, tag: str, rows: _Rows):
  """(top-left row, top-left col or None, span in points, cols covered) of one anchor, or None."""
  frm, to = anchor.find(f'{{{NS_XDR}}}from'), anchor.find(f'{{{NS_XDR}}}to')
  ext = anchor.find(f'{{{NS_XDR}}}ext')
  if tag in ('twoCellAnchor', 'oneCellAnchor') and frm is not None:
    row, col = _emu(frm, 'row') + 1, _emu(frm, 'col') + 1
    # Offsets past the row's height are clamped: the anchor names the row it starts in.
    top = rows.top(row) + min(_emu(frm, 'rowOff') / EMU_PER_POINT, rows.height(row))
    if tag == 'twoCellAnchor' and to is not None:
      r2, c2 = _emu(to, 'row') + 1, _emu(to, 'col') + 1
      bottom = rows.top(r2) + min(_emu(to, 'rowOff') / EMU_PER_POINT, rows.height(r2))
      last = c2 if _emu(to, 'colOff') > 0 or c2 == col else c2 - 1
      cols = tuple(range(col, max(col, last) + 1))
    else:
      bottom = top + (int(ext.get('cy', '0')) / EMU_PER_POINT if ext is not None else 0.0)
      cols = (col,)
    return row, col, (top, max(bottom, top)), cols
  pos = anchor.find(f'{{{NS_XDR}}}pos')
  if tag == 'absoluteAnchor' and pos is not None:
    top = int(pos.get('y', '0')) / EMU_PER_POINT
    height = int(ext.get('cy', '0')) / EMU_PER_POINT if ext is not None else 0.0
    return rows.at(top), None, (top, top + height), ()
  return None


def _anchored_photos(pkg: _Package, sheet_part: str, rows: _Rows) -> list[Photo]:
  """Pictures of the sheet's drawings. ``row`` is the anchor's top-left row for now; the owning
  row is decided from ``span`` once the student rows are known (:func:`_assign_photos`)."""
  photos = []
  for kind, drawing in pkg.rels(sheet_part).values():
    if not kind.endswith('/drawing'):
      continue
    root = pkg.xml(drawing)
    if root is None:
      continue
    media = pkg.rels(drawing)
    for anchor in root:
      found = _anchor_span(anchor, anchor.tag.rsplit('}', 1)[-1], rows)
      if found is None:
        continue
      row, col, span, cols = found
      ref = f'{get_column_letter(col)}{row}' if col else f'row {row} (absolute position)'
      for blip in anchor.iter(f'{{{NS_A}}}blip'):
        rid = blip.get(f'{{{NS_REL}}}embed')
        if rid in media and pkg.has(media[rid][1]):
          photos.append(Photo(row, col, pkg.read(media[rid][1]), media[rid][1], 'anchored',
                              span, cols, ref))
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
        extras = _sheet_extras(_Package(zf), name)
      return _rows(str(path), name, values, header_row, columns, extras)
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


@dataclasses.dataclass
class _SheetExtras:
  """What openpyxl's read-only values do not say: pictures, row geometry and hidden rows,
  formula cells, merged ranges."""
  photos: list[Photo]
  rows: _Rows
  formulas: dict[tuple[int, int], tuple[str, bool]]  # (row, col) -> (formula, has a saved result)
  merged: list[tuple[int, int, int, int]]  # (min_row, min_col, max_row, max_col)
  stale_results: bool  # the workbook asks to be recalculated on load (written by a library)


def _sheet_extras(pkg: _Package, sheet_name: str) -> _SheetExtras:
  part = _sheet_parts(pkg).get(sheet_name)
  sheet = pkg.xml(part) if part is not None else None
  rows = _Rows(sheet)
  if sheet is None:
    return _SheetExtras([], rows, {}, [], False)
  formulas = {}
  for c in sheet.iter(f'{{{NS_MAIN}}}c'):
    f = c.find(f'{{{NS_MAIN}}}f')
    if f is not None:
      try:
        ref = _cell_ref(c.get('r'))
      except ValueError:
        continue
      v = c.find(f'{{{NS_MAIN}}}v')
      formulas[ref] = (f.text or '', v is not None and bool((v.text or '').strip()))
  merged = []
  for m in sheet.iter(f'{{{NS_MAIN}}}mergeCell'):
    try:
      a, b = (_cell_ref(x) for x in m.get('ref', '').split(':'))
    except ValueError:
      continue
    merged.append((min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])))
  wb = pkg.xml('xl/workbook.xml')
  calc = wb.find(f'{{{NS_MAIN}}}calcPr') if wb is not None else None
  stale = calc is not None and calc.get('fullCalcOnLoad', '').lower() in ('1', 'true')
  photos = _anchored_photos(pkg, part, rows) + _in_cell_photos(pkg, sheet)
  return _SheetExtras(photos, rows, formulas, merged, stale)


# A picture belongs to a row when that row holds at least this share of its height.
MAJORITY = 2 / 3


def _assign_photos(photos: list[Photo], rows: _Rows, data_rows: set[int], first_row: int,
                   photo_col: int | None = None
                   ) -> tuple[dict[int, list[Photo]], dict[int, str]]:
  """Decides which row owns each picture, from where the picture lies, not its anchor cell.

  Applications shift anchors (LibreOffice re-anchors a hidden row's picture to the next row,
  offsets can push a picture mostly into the next row), so the anchor's top-left cell is not a
  reliable owner. A picture belongs to the only student row it covers; covering several, to
  the one holding at least ``MAJORITY`` of it; otherwise it is ambiguous and every row it
  covers gets a problem instead of a guess, unless it lies outside the photo column (a logo):
  then it is ignored. Pictures above ``first_row`` (logos over the header) are ignored too.
  In-cell pictures belong to their cell.

  Returns:
    row -> owned pictures, and row -> 'photo_ambiguous: ...' reasons.
  """
  owned: dict[int, list[Photo]] = {}
  problems: dict[int, str] = {}
  for p in photos:
    owner = p.row
    if p.placement == 'anchored' and p.span is not None and p.span[1] > p.span[0]:
      height = p.span[1] - p.span[0]
      # Touching a row by a sliver (rounding of offsets) does not count as covering it.
      overlaps = rows.overlaps(p.span)
      if sum(pts for r, pts in overlaps.items() if r < first_row) >= 0.5 * height:
        continue  # mostly in the header or above: a logo, not a student's photo
      cover = {r: pts for r, pts in overlaps.items()
               if r >= first_row and pts > max(0.5, 0.02 * height)}
      students = {r: pts for r, pts in cover.items() if r in data_rows}
      if not cover:
        continue
      if len(students) == 1:
        owner = next(iter(students))
      elif students:
        best = max(students, key=students.get)
        if students[best] >= MAJORITY * height:
          owner = best
        elif photo_col is not None and p.cols and photo_col not in p.cols:
          continue
        else:
          shares = ' / '.join(f'row {r}: {100 * pts / height:.0f}%'
                              for r, pts in sorted(students.items()))
          for r in students:
            problems.setdefault(r, (
                f'photo_ambiguous: the picture anchored at {p.anchor} lies across several '
                f'student rows ({shares}); move it inside one row (or make the rows taller)'))
          continue
      else:
        owner = max(cover, key=cover.get)
    elif p.placement == 'anchored' and p.span is not None:
      owner = rows.at(p.span[0])
    if owner < first_row:
      continue
    owned.setdefault(owner, []).append(p)
  return owned, problems


def _choose_photo(r: int, here: list[Photo], photo_col: int | None, rows: _Rows
                  ) -> tuple[Photo | None, str | None]:
  """The row's photo among the pictures it owns, or a 'several_photos' problem."""
  if len(here) <= 1:
    return (here[0] if here else None), None
  in_col = [p for p in here if photo_col is not None and photo_col in (p.cols or (p.col,))]
  if len(in_col) == 1:
    return in_col[0], None  # e.g. a logo beside the photo column
  where = ', '.join(p.anchor or f'{column_label(p.col)}{p.row}' for p in (in_col or here))
  hint = ''
  for near in (r - 1, r + 1):
    if near in rows.hidden:
      hint = (f'; row {near} is hidden: programs that re-save a workbook may move a hidden '
              "row's picture into the next row. Unhide it, check the photos and save again")
      break
  return None, (f'several_photos: {len(in_col or here)} pictures in this row (at {where}); '
                f'keep one photo per row{hint}')


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


def _moved_from_hidden(owned: dict[int, list[Photo]], ambiguous: dict[int, str],
                       hidden: set[int], data_rows: set[int], header_row: int) -> dict[int, str]:
  """Rows whose picture may belong to a hidden student row above them.

  LibreOffice re-anchors the picture of a hidden row to the next visible row when it saves
  (XlsxWriter does the same unless told object_position=4), so a picture below a hidden row
  that has none may be that row's: both rows get a problem rather than a possibly wrong photo.
  """
  out = {}
  for r in sorted(owned):
    above = r - 1
    while above in hidden and above > header_row:
      if above in data_rows and above not in owned and above not in ambiguous:
        out[r] = (f'photo_uncertain: row {above} above is hidden and has no picture; programs that '
                  "re-save a workbook (LibreOffice) move a hidden row's picture into the next "
                  f'visible row, so this picture may be row {above}\'s. Unhide row {above}, check '
                  'the photos and save again')
        out.setdefault(above, (
            f'no_photo: this hidden row has no picture, and the picture in row {r} below may be '
            f'its own (moved when the workbook was re-saved); unhide the row and check'))
        break
      above -= 1
  return out


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
  owned, ambiguous = _assign_photos(photos, geometry, data_rows, header_row + 1, columns['photo'])
  last = max([len(values)] + list(owned) + list(ambiguous))
  moved = _moved_from_hidden(owned, ambiguous, geometry.hidden, data_rows, header_row)
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
    photo, problem = _choose_photo(r, here, columns['photo'], geometry)
    problem = ambiguous.get(r) or problem or moved.get(r)
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
    rows.append(Row(r, cell(r, columns['id']), grade, photo, len(here),
                    hidden=r in geometry.hidden, photo_problem=problem,
                    id_problem=_cell_problem('id', r, columns['id'], extras, None),
                    grade_problem=_cell_problem('grade', r, columns['grade'], extras, grade),
                    group_value=cell(r, columns.get('group'))))
  return Table(path, sheet, header_row, columns, rows, blank)


def column_label(col: int | None) -> str:
  return get_column_letter(col) if col else '-'
