"""Issue 24: no row may get another student's photo, on the trap workbooks written by XlsxWriter
and openpyxl and their LibreOffice round trips (tests/fixtures/make_trap_workbooks.py), and
photos clearly anchored in Excel's default layout are used. Each photo's colour says whose it
is; the end-to-end check reads it back from the chip."""
import io
import pathlib

import numpy as np
import pytest
from PIL import Image

from fixtures import make_trap_workbooks as traps
from gradejax.data import images, manifest, prepare, workbook

FOLDER = pathlib.Path(__file__).parent / 'fixtures' / 'traps'
VARIANTS = ['xlsxwriter', 'openpyxl', 'lo_xlsxwriter', 'lo_openpyxl', 'ods_xlsxwriter',
            'ods_openpyxl']


def _sheets(variant):
  return [s for s in traps.SHEETS if not (s == 'InCell' and 'openpyxl' in variant)]


def _owner(colour) -> int | None:
  """The student whose photo has this colour."""
  ks = [k for s, rows in traps.SHEETS.items() for k in (traps.student(s, i) for i in range(len(rows)))]
  return next((k for k in ks + [5] if traps.colour(k) == tuple(colour)), None)


@pytest.mark.parametrize('variant', VARIANTS)
def test_no_row_gets_another_students_photo(variant):
  used = set()
  for sheet in _sheets(variant):
    table = workbook.read_workbook(FOLDER / f'{variant}.xlsx', sheet=sheet)
    assert [r.source_row for r in table.rows] == list(range(2, 2 + len(traps.SHEETS[sheet])))
    for r in table.rows:
      assert r.id_value == traps.sid(sheet, r.source_row - 2)
      if r.photo is None:
        assert r.photo_problem or not traps.SHEETS[sheet][r.source_row - 2][2], (sheet, r)
        continue
      with Image.open(io.BytesIO(r.photo.data)) as im:
        colour = np.asarray(im.convert('RGB'))[0, 0]
      assert _owner(colour) == traps.student(sheet, r.source_row - 2), (variant, sheet, r)
      used.add((sheet, r.source_row))
  # Excel's default 15 pt rows, photos anchored at their cell's top: all used. (LibreOffice's
  # .ods keeps its own row heights, where an offset photo is a genuine straddle.)
  offset = lambda s, r: r >= 2 and traps.SHEETS[s][r - 2][2].get('y', 0) > 0  # noqa: E731
  must = traps.MUST_USE if not variant.startswith('ods') else {
      (s, r) for s, r in traps.MUST_USE if not offset(s, r) and not offset(s, r - 1)}
  assert must <= used, sorted(must - used)


def test_problems_name_the_rows_involved():
  t = workbook.read_workbook(FOLDER / 'xlsxwriter.xlsx', sheet='Taller')
  # Row 2's photo (default height) lies mostly in the 60 pt row 3: both rows skipped.
  assert t.rows[0].photo_problem.startswith('photo_ambiguous: the picture anchored at C2 lies '
                                            'across student rows 2, 3 (row 2: ')
  assert t.rows[1].photo_problem == t.rows[0].photo_problem
  lo = {r.source_row: r for r in workbook.read_workbook(FOLDER / 'lo_xlsxwriter.xlsx',
                                                         sheet='InCell').rows}
  assert lo[3].photo is None and lo[3].photo_problem.startswith(
      'photo_uncertain: the cell C3 reads #VALUE!')


def test_end_to_end_every_chip_is_its_rows_photo(tmp_path):
  opts = dict(folds=2, no_face='centre', min_side=16, pivot='median')
  seen = 0
  for sheet in ('Default', 'Hidden', 'InCell'):
    out = tmp_path / sheet
    prepare.prepare(FOLDER / 'lo_xlsxwriter.xlsx', out, prepare.Options(sheet=sheet, **opts))
    for e in manifest.read(out / 'manifest.csv'):
      if e.status == 'used':
        chip = images.read_png(out / e.file)
        assert _owner(chip[75, 75]) == int(e.id.rsplit('-', 1)[1]), (sheet, e.id)
        seen += 1
  assert seen >= len(traps.MUST_USE) + 3


def test_chartsheet_is_skipped_with_a_message(tmp_path):
  import openpyxl
  from openpyxl.chart import BarChart, Reference
  wb = openpyxl.Workbook()
  ws = wb.active
  ws.title = 'Data'
  cs = wb.create_chartsheet('Chart', 0)  # the first sheet is a chart
  ws.append(['id', 'grade'])
  ws.append(['a', 4.5])
  chart = BarChart()
  chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=2), titles_from_data=True)
  cs.add_chart(chart)
  wb.save(tmp_path / 'c.xlsx')
  assert workbook.read_workbook(tmp_path / 'c.xlsx').sheet == 'Data'
  with pytest.raises(workbook.WorkbookError, match=r"the sheet 'Chart' is a chart sheet, not a "
                     r"grid of cells; pass --sheet .* \(sheets with cells: 'Data'\)"):
    workbook.read_workbook(tmp_path / 'c.xlsx', sheet='Chart')
  ws.delete_rows(1, 2)
  wb.save(tmp_path / 'd.xlsx')
  with pytest.raises(workbook.WorkbookError, match=r"sheet 'Chart' is a chart sheet \(skipped\)"):
    workbook.read_workbook(tmp_path / 'd.xlsx')
