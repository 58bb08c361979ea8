"""The pictures of a sheet and where they lie, measured as office suites lay the sheet out.

Two placements are understood:

* drawings anchored to a cell (``xl/drawings/drawingN.xml``: ``twoCellAnchor`` /
  ``oneCellAnchor`` name their top-left cell and offsets; ``absoluteAnchor`` a position);
* pictures placed in a cell, which Excel stores as rich values::

    sheet   <c r="C2" t="e" vm="1"><v>#VALUE!</v></c>          vm: 1-based
    -> xl/metadata.xml  valueMetadata/bk[vm-1]/rc(t, v)          t: 1-based metadataType (XLRICHVALUE)
    -> futureMetadata[@name=XLRICHVALUE]/bk[v]//xlrd:rvb(i)      i: rich value index
    -> xl/richData/rdrichvalue.xml rv[i] (values ordered by structure rv/@s)
    -> xl/richData/rdrichvaluestructure.xml s[@s]: key _rvRel:LocalImageIdentifier -> n
    -> xl/richData/richValueRel.xml rel[n]/@r:id
    -> xl/richData/_rels/richValueRel.xml.rels -> xl/media/imageK.png

Row geometry (:class:`Layout`) follows what Excel, LibreOffice and XlsxWriter do when they write
anchors: a hidden row (or column) is laid out at zero height (width), whatever height it
stores, so an anchor's offsets are measured over the visible rows only.
"""
from __future__ import annotations

import dataclasses
from xml.etree import ElementTree as ET

import numpy as np
from openpyxl.utils import get_column_letter

from gradejax.data.package import NS_MAIN, NS_REL, Package, cell_ref

NS_XDR = 'http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing'
NS_A = 'http://schemas.openxmlformats.org/drawingml/2006/main'
NS_RD = 'http://schemas.microsoft.com/office/spreadsheetml/2017/richdata'
NS_RVREL = 'http://schemas.microsoft.com/office/spreadsheetml/2022/richvaluerel'
EMU_PER_POINT = 12700
MAX_ROW = 1_048_576


@dataclasses.dataclass(frozen=True)
class Photo:
  """A picture found in the package. ``row``/``col`` are 1-based sheet coordinates: the
  anchor's top-left cell (``col`` None for an absolute position)."""
  row: int
  col: int | None
  data: bytes
  part: str
  placement: str  # 'anchored' or 'in_cell'
  # Where the picture lies, for anchored ones: its vertical extent in points from the top of the
  # sheet (hidden rows at zero height), the visible columns it covers (1-based) and the cell of
  # its top-left anchor ('C2').
  span: tuple[float, float] | None = None
  cols: tuple[int, ...] = ()
  anchor: str = ''


def _hidden(node: ET.Element) -> bool:
  return node.get('hidden', '').lower() in ('1', 'true')


class Layout:
  """Row geometry of a sheet: row r spans [top(r), top(r + 1)) points from the sheet's top.

  A row's height is its stored ``ht`` (else ``defaultRowHeight``), and zero when it is hidden;
  a column is hidden when flagged so or of zero width.
  """

  def __init__(self, sheet: ET.Element | None):
    self.default = 15.0
    self.heights: dict[int, float] = {}  # stored heights, as written
    self.hidden: set[int] = set()
    self.hidden_cols: set[int] = set()
    self._tops = np.zeros(2)
    if sheet is None:
      return
    fmt = sheet.find(f'{{{NS_MAIN}}}sheetFormatPr')
    if fmt is not None and fmt.get('defaultRowHeight'):
      self.default = max(0.0, float(fmt.get('defaultRowHeight')))
    if fmt is not None and fmt.get('zeroHeight', '').lower() in ('1', 'true'):
      self.default = 0.0  # rows not listed are hidden
    for row in sheet.iter(f'{{{NS_MAIN}}}row'):
      if not row.get('r', '').isdigit():
        continue
      r = int(row.get('r'))
      if row.get('ht'):
        self.heights[r] = max(0.0, float(row.get('ht')))
      if _hidden(row):
        self.hidden.add(r)
    for col in sheet.iter(f'{{{NS_MAIN}}}col'):
      try:
        lo, hi = int(col.get('min', '0')), int(col.get('max', '0'))
        zero = col.get('width') is not None and float(col.get('width')) <= 0
      except ValueError:
        continue
      if _hidden(col) or zero:
        self.hidden_cols.update(range(max(lo, 1), min(hi, 16384) + 1))

  def height(self, r: int) -> float:
    """The laid-out height of row ``r`` in points (0 for a hidden row)."""
    return 0.0 if r in self.hidden else self.heights.get(r, self.default)

  def _grow(self, n: int) -> None:
    h = np.full(n, self.default)
    h[0] = 0.0
    for row, ht in self.heights.items():
      if row < n:
        h[row] = ht
    h[[r for r in self.hidden if r < n]] = 0.0
    self._tops = np.concatenate([[0.0], np.cumsum(h)])  # _tops[r] = sum of rows 1..r-1

  def top(self, r: int) -> float:
    """Points from the sheet's top to the top of 1-based row ``r``."""
    if r >= len(self._tops):
      self._grow(max(r + 1, 2 * len(self._tops), max(self.heights, default=0) + 2,
                     max(self.hidden, default=0) + 2))
    return float(self._tops[r])

  def at(self, y: float) -> int:
    """The 1-based row holding the point ``y`` (the first visible one at a boundary)."""
    while self._tops[-1] <= y and len(self._tops) < MAX_ROW + 2:
      self._grow(2 * len(self._tops))
    return max(1, int(np.searchsorted(self._tops, y, side='right')) - 1)

  def overlaps(self, span: tuple[float, float]) -> dict[int, float]:
    """Row -> points of ``span`` inside it (rows of non-zero height it touches)."""
    top, bottom = span
    out, r = {}, self.at(top)
    while r < MAX_ROW and self.top(r) < bottom:
      pts = min(bottom, self.top(r + 1)) - max(top, self.top(r))
      if pts > 0:
        out[r] = pts
      r += 1
    return out

  def visible_cols(self, first: int, last: int) -> tuple[int, ...]:
    """The columns ``first..last`` that are not hidden (``(first,)`` if all are)."""
    cols = tuple(c for c in range(first, max(first, last) + 1) if c not in self.hidden_cols)
    return cols or (first,)


def _emu(node: ET.Element | None, tag: str) -> int:
  text = node.findtext(f'{{{NS_XDR}}}{tag}', '0') if node is not None else '0'
  try:
    return int(float(text))
  except ValueError:
    return 0


def _anchor_span(anchor: ET.Element, tag: str, rows: Layout):
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
      cols = rows.visible_cols(col, last)
    else:
      bottom = top + (int(ext.get('cy', '0')) / EMU_PER_POINT if ext is not None else 0.0)
      cols = rows.visible_cols(col, col)
    return row, col, (top, max(bottom, top)), cols
  pos = anchor.find(f'{{{NS_XDR}}}pos')
  if tag == 'absoluteAnchor' and pos is not None:
    top = int(pos.get('y', '0')) / EMU_PER_POINT
    height = int(ext.get('cy', '0')) / EMU_PER_POINT if ext is not None else 0.0
    return rows.at(top), None, (top, top + height), ()
  return None


def anchored_photos(pkg: Package, sheet_part: str, rows: Layout) -> list[Photo]:
  """Pictures of the sheet's drawings. ``row`` is the anchor's top-left row; the owning row is
  decided once the student rows are known (:func:`gradejax.data.ownership.assign_photos`)."""
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


def in_cell_photos(pkg: Package, sheet: ET.Element | None) -> list[Photo]:
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
      row, col = cell_ref(ref)
      photos.append(Photo(row, col, pkg.read(part), part, 'in_cell'))
    except (IndexError, KeyError, ValueError, TypeError):
      continue  # Not a picture (other rich values exist, e.g. stock data types).
  return photos


