"""Which student row owns each picture: the anchor cell is the first evidence, the layout the
second, and a row whose evidence is not clean gets a problem instead of a guess.

Rules (a row's problem starts with its code; every row involved is named):

* A picture anchored to a cell belongs to its anchor row when that row holds more than half of
  the picture's laid-out height (``ANCHOR_SHARE``), or is the only student row it covers (a photo slightly taller
  than Excel's default 15 pt row, anchored at the row's top, is its row's). A picture that is
  not visible (it lies in hidden or zero-height rows) belongs to its anchor row.
* When most of the picture lies outside its anchor row (offsets, a 2 pt row, a taller row
  below), the anchor and the layout disagree: every student row involved (the anchor's and
  those the picture covers) is skipped as ``photo_ambiguous``. A photo that appears in two
  rows' evidence marks both.
* A picture whose anchor row is not a student row (the header, a blank row) or that has an
  absolute position belongs to the only student row it covers, or to the one holding at least
  ``MAJORITY`` of it; else it is ambiguous. Pictures mostly above the first student row, and
  ambiguous ones outside the photo column, are logos: ignored.
* Hidden rows: LibreOffice (and XlsxWriter unless told object_position=4) moves a hidden row's
  picture into the next visible row when it writes the file. So when a hidden student row has
  no picture, every picture in its block of hidden rows and in the first visible row below is
  ``photo_uncertain`` and the hidden row ``no_photo``, naming each other.
* Several pictures in one row: ``several_photos`` (one in the photo column beside others
  outside it is taken).
"""
from __future__ import annotations

from openpyxl.utils import get_column_letter

from gradejax.data.pictures import Layout, Photo

# A picture whose anchor row is not a student row belongs to a row holding this share of it.
MAJORITY = 2 / 3
# A picture belongs to its anchor row when the row holds more than this share of it: a clear
# majority, since LibreOffice's re-save rounds anchors to its own units (a half-and-half
# straddle reads 50.02% after it) and a photo split in halves is a coin toss, not evidence.
ANCHOR_SHARE = 0.52


def _shares(students: dict[int, float], height: float) -> str:
  return ' / '.join(f'row {r}: {100 * pts / height:.0f}%' for r, pts in sorted(students.items()))


def assign_photos(photos: list[Photo], rows: Layout, data_rows: set[int], first_row: int,
                  photo_col: int | None = None
                  ) -> tuple[dict[int, list[Photo]], dict[int, str]]:
  """Decides which row owns each picture (see the module docstring). In-cell pictures belong
  to their cell.

  Args:
    rows: the sheet's layout; data_rows: the 1-based student rows; first_row: the row below
      the header; photo_col: the photo column (1-based) or None.

  Returns:
    row -> owned pictures, and row -> 'photo_ambiguous: ...' reasons.
  """
  owned: dict[int, list[Photo]] = {}
  problems: dict[int, str] = {}
  for p in photos:
    owner = _owner(p, rows, data_rows, first_row, photo_col, problems)
    if owner is not None and owner >= first_row:
      owned.setdefault(owner, []).append(p)
  return owned, problems


def _owner(p: Photo, rows: Layout, data_rows: set[int], first_row: int, photo_col: int | None,
           problems: dict[int, str]) -> int | None:
  """The row owning ``p``; None when it is ignored or ambiguous (then ``problems`` is filled)."""
  if p.placement != 'anchored' or p.span is None:
    return p.row
  anchor = p.row if p.col is not None else None  # a cell anchor, not an absolute position
  top, bottom = p.span
  height = bottom - top
  if height <= 0:  # not visible (hidden or zero-height rows): the anchor is all there is
    return anchor if anchor is not None else rows.at(top)
  overlaps = rows.overlaps(p.span)
  if sum(pts for r, pts in overlaps.items() if r < first_row) >= 0.5 * height:
    return None  # mostly in the header or above: a logo, not a student's photo
  # Touching a row by a sliver (rounding of offsets) does not count as covering it.
  cover = {r: pts for r, pts in overlaps.items()
           if r >= first_row and pts > max(0.5, 0.02 * height)}
  students = {r: pts for r, pts in cover.items() if r in data_rows}
  if not students and anchor not in data_rows:  # e.g. a picture in a blank row
    return max(cover, key=cover.get) if cover else None
  if anchor in data_rows:
    if anchor in students and (students[anchor] > ANCHOR_SHARE * height or len(students) == 1):
      return anchor
  elif students:
    best = max(students, key=students.get)
    if len(students) == 1 or students[best] >= MAJORITY * height:
      return best
  if photo_col is not None and p.cols and photo_col not in p.cols:
    return None  # e.g. a logo beside the photo column
  involved = dict(students)
  if anchor in data_rows:
    involved.setdefault(anchor, 0.0)
  where = ('' if anchor not in data_rows or students.get(anchor, 0) else
           f' (none of it in its anchor row {anchor})')
  for r in involved:
    problems.setdefault(r, (
        f'photo_ambiguous: the picture anchored at {p.anchor} lies across student rows '
        f'{", ".join(map(str, sorted(involved)))} ({_shares(involved, height)}){where}; move it '
        'inside its own row (or make the rows taller)'))
  return None


def choose_photo(r: int, here: list[Photo], photo_col: int | None, rows: Layout
                 ) -> tuple[Photo | None, str | None]:
  """The row's photo among the pictures it owns, or a 'several_photos' problem."""
  if len(here) <= 1:
    return (here[0] if here else None), None
  in_col = [p for p in here if photo_col is not None and photo_col in (p.cols or (p.col,))]
  if len(in_col) == 1:
    return in_col[0], None  # e.g. a logo beside the photo column
  where = ', '.join(p.anchor or f'{get_column_letter(p.col)}{p.row}' for p in (in_col or here))
  hint = ''
  for near in (r - 1, r + 1):
    if near in rows.hidden:
      hint = (f'; row {near} is hidden: programs that re-save a workbook may move a hidden '
              "row's picture into the next row. Unhide it, check the photos and save again")
      break
  return None, (f'several_photos: {len(in_col or here)} pictures in this row (at {where}); '
                f'keep one photo per row{hint}')


def hidden_row_doubts(owned: dict[int, list[Photo]], ambiguous: dict[int, str],
                      hidden: set[int], data_rows: set[int], header_row: int) -> dict[int, str]:
  """Rows whose picture may belong to a hidden student row without one (see the module
  docstring), and those hidden rows: row -> 'photo_uncertain: ...' / 'no_photo: ...'."""
  out: dict[int, str] = {}
  blocks, block = [], []
  for h in sorted(r for r in hidden if r > header_row):
    if block and h != block[-1] + 1:
      blocks.append(block)
      block = []
    block.append(h)
  if block:
    blocks.append(block)
  for block in blocks:
    lacking = [h for h in block if h in data_rows and h not in owned and h not in ambiguous]
    below = block[-1] + 1
    suspects = [r for r in block + [below] if r in owned and r > min(lacking, default=below)]
    if not lacking or not suspects:
      continue
    names = ', '.join(map(str, lacking))
    for r in suspects:
      out[r] = (f'photo_uncertain: row {names} above is hidden and has no picture; programs that '
                "re-save a workbook (LibreOffice) move a hidden row's picture into the next "
                f'visible row, so this picture may be row {names}\'s. Unhide row {names}, check '
                'the photos and save again')
    for h in lacking:
      out.setdefault(h, (
          f'no_photo: this hidden row has no picture, and the picture in row '
          f'{", ".join(map(str, suspects))} below may be its own (moved when the workbook was '
          're-saved); unhide the row and check'))
  return out
