"""The xlsx package: checks that a file is a readable workbook (and not a zip bomb), and gives
case-insensitive access to its parts and relationships.

An .xlsx file is a zip of XML parts. Formats that are not (.xls, encrypted workbooks, .ods,
.xlsb, a folder) are refused here with a message saying how to save the file as .xlsx.
"""
from __future__ import annotations

import pathlib
import posixpath
import re
import zipfile
from xml.etree import ElementTree as ET

from openpyxl.utils import column_index_from_string

NS_MAIN = 'http://schemas.openxmlformats.org/spreadsheetml/2006/main'
NS_REL = 'http://schemas.openxmlformats.org/officeDocument/2006/relationships'
NS_PKG_REL = 'http://schemas.openxmlformats.org/package/2006/relationships'
OLE_MAGIC = b'\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1'


class WorkbookError(ValueError):
  """The workbook cannot be read as asked; the message names the file and what to do."""



def check_package(path: str | pathlib.Path) -> None:
  """Raises :class:`WorkbookError` unless ``path`` looks like a readable .xlsx package."""
  path = pathlib.Path(path)
  if path.is_dir():
    raise WorkbookError(
        f'{path} is a folder, not a workbook file: pass the .xlsx file itself (or, for a '
        'folder of photos, a CSV of id, grade, file name with --images_dir pointing at it).')
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


class Package:
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


def sheet_parts(pkg: Package) -> dict[str, str]:
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


def cell_ref(ref: str) -> tuple[int, int]:
  """'C12' (or '$C$12') -> (12, 3): 1-based row and column."""
  m = re.fullmatch(r'\$?([A-Za-z]{1,3})\$?(\d+)', ref or '')
  if not m:
    raise ValueError(ref)
  return int(m.group(2)), column_index_from_string(m.group(1).upper())

