"""Workbook reading: columns by header, photos by anchor or in-cell rich values, bad files."""
import io
import pathlib
import zipfile

import numpy as np
import openpyxl
import pytest

from fixtures import xlsx_builders as xb
from gradejax.data import workbook

FIXTURES = pathlib.Path(__file__).parent / 'fixtures'


def _photo(k: int) -> bytes:
  """A distinct small PNG per k, so tests can tell which photo landed in which row."""
  return xb.png_bytes(np.full((70, 70 + k, 3), 10 * k, np.uint8))


def _rows_summary(table):
  return [(r.source_row, r.id_value, r.grade_value,
           None if r.photo is None else r.photo.data) for r in table.rows]


@pytest.mark.parametrize('two_cell', [False, True])
def test_anchored_photos_match_their_rows(tmp_path, two_cell):
  rows = [('a1', 4.5, _photo(1)), ('a2', '3,5', None), ('a3', 5, _photo(3))]
  path = xb.write_workbook(tmp_path / 'w.xlsx', rows, two_cell=two_cell)
  table = workbook.read_workbook(path)
  assert table.sheet == 'Grades' and table.header_row == 1
  assert table.columns == {'id': 1, 'grade': 2, 'photo': 3}
  assert _rows_summary(table) == [(2, 'a1', 4.5, _photo(1)), (3, 'a2', '3,5', None),
                                  (4, 'a3', 5, _photo(3))]
  assert all(r.photo is None or r.photo.placement == 'anchored' for r in table.rows)


def test_in_cell_pictures_are_read_from_rich_values(tmp_path):
  rows = [('c1', 4.0, _photo(1)), ('c2', 2.5, None), ('c3', 6, _photo(3)), ('c4', 5.5, _photo(4))]
  path = xb.write_in_cell_workbook(tmp_path / 'in_cell.xlsx', rows)
  with zipfile.ZipFile(path) as zf:
    sheet = zf.read('xl/worksheets/sheet1.xml').decode()
  assert sheet.count('t="e" vm=') == 3
  table = workbook.read_workbook(path)
  assert _rows_summary(table) == [(2, 'c1', 4.0, _photo(1)), (3, 'c2', 2.5, None),
                                  (4, 'c3', 6, _photo(3)), (5, 'c4', 5.5, _photo(4))]
  assert {r.photo.placement for r in table.rows if r.photo} == {'in_cell'}
  # openpyxl itself sees only the error placeholder in those cells.
  ws = openpyxl.load_workbook(path, data_only=True).active
  assert ws['C2'].value == '#VALUE!' and not ws._images


def test_header_synonyms_title_rows_and_blank_rows(tmp_path):
  wb = openpyxl.Workbook()
  ws = wb.active
  ws.title = 'Données'
  ws['A1'] = 'Résultats 1re année'  # a title above the header
  ws.append([])
  ws.append(['Portrait', 'Anon. ID', 'Moyenne'])
  ws.append([None, 'x1', '4,25'])
  ws.append([None, None, None])
  ws.append([None, 'x2', 5])
  wb.save(tmp_path / 'fr.xlsx')
  table = workbook.read_workbook(tmp_path / 'fr.xlsx')
  assert table.header_row == 3
  assert table.columns == {'id': 2, 'grade': 3, 'photo': 1}
  assert [(r.source_row, r.id_value, r.grade_value) for r in table.rows] == [
      (4, 'x1', '4,25'), (6, 'x2', 5)]
  assert table.blank_rows == 1


def test_sheet_and_column_flags(tmp_path):
  wb = openpyxl.Workbook()
  wb.active.title = 'Intro'
  wb.active['A1'] = 'read me'
  ws = wb.create_sheet('Year1')
  ws.append(['code eleve', 'resultat', 'grade'])  # 'grade' is a decoy column here
  ws.append(['e1', 4.5, 'B'])
  wb.save(tmp_path / 'flags.xlsx')
  table = workbook.read_workbook(tmp_path / 'flags.xlsx', sheet='Year1', id_column='Code Élève',
                                 grade_column='resultat')
  assert table.columns['id'] == 1 and table.columns['grade'] == 2
  assert [(r.id_value, r.grade_value) for r in table.rows] == [('e1', 4.5)]
  by_letter = workbook.read_workbook(tmp_path / 'flags.xlsx', sheet='Year1', id_column='A',
                                     grade_column='B')
  assert by_letter.columns['grade'] == 2


def test_missing_sheet_lists_sheets(tmp_path):
  path = xb.write_workbook(tmp_path / 'w.xlsx', [('a', 4, None)], extra_sheets=['Other'])
  with pytest.raises(workbook.WorkbookError) as e:
    workbook.read_workbook(path, sheet='Grades2024')
  msg = str(e.value)
  assert str(path) in msg and "'Grades2024'" in msg and "'Grades'" in msg and "'Other'" in msg


def test_missing_columns_list_headers(tmp_path):
  path = xb.write_workbook(tmp_path / 'w.xlsx', [('a', 4, None)],
                           headers=('Student', 'Result', 'Picture'))
  with pytest.raises(workbook.WorkbookError) as e:
    workbook.read_workbook(path)
  msg = str(e.value)
  assert str(path) in msg and "'Student'" in msg and "'Result'" in msg and '--grade_column' in msg
  with pytest.raises(workbook.WorkbookError, match="'Moyenne' not found"):
    workbook.read_workbook(path, id_column='Student', grade_column='Moyenne')
  table = workbook.read_workbook(path, id_column='Student', grade_column='Result')
  assert table.columns == {'id': 1, 'grade': 2, 'photo': 3}


def test_bad_files_raise_clear_errors(tmp_path):
  csv = tmp_path / 'grades.xlsx'
  csv.write_text('id,grade\na,4\n')
  with pytest.raises(workbook.WorkbookError, match=r'grades\.xlsx: not an Excel \.xlsx'):
    workbook.read_workbook(csv)
  other_zip = tmp_path / 'doc.xlsx'
  with zipfile.ZipFile(other_zip, 'w') as zf:
    zf.writestr('word/document.xml', '<w/>')
  with pytest.raises(workbook.WorkbookError, match=r'doc\.xlsx: a zip file but not an \.xlsx'):
    workbook.read_workbook(other_zip)
  locked = xb.write_encrypted_container(tmp_path / 'locked.xlsx')
  with pytest.raises(workbook.WorkbookError, match=r'locked\.xlsx: the workbook is password-protected'):
    workbook.read_workbook(locked)
  # A real encrypted workbook (ECMA-376 agile, made by msoffcrypto-tool: fixtures/README.md).
  real = pathlib.Path(__file__).parent / 'fixtures' / 'encrypted_grades.xlsx'
  with pytest.raises(workbook.WorkbookError,
                     match=r'encrypted_grades\.xlsx: the workbook is password-protected'):
    workbook.read_workbook(real)
  with pytest.raises(workbook.WorkbookError, match='no such file'):
    workbook.read_workbook(tmp_path / 'missing.xlsx')
  broken = tmp_path / 'broken.xlsx'
  good = xb.write_workbook(tmp_path / 'good.xlsx', [('a', 4, None)])
  broken.write_bytes(good.read_bytes()[:600])  # a zip cut short
  with pytest.raises(workbook.WorkbookError, match=r'broken\.xlsx'):
    workbook.read_workbook(broken)


@pytest.mark.parametrize('value,expected', [
    (4.5, 4.5), (4, 4.0), ('4.5', 4.5), ('4,5', 4.5), (' 5,25 ', 5.25), ('6', 6.0), (1, 1.0)])
def test_parse_grade_accepts_numbers(value, expected):
  assert workbook.parse_grade(value) == (expected, None)


@pytest.mark.parametrize('value,code', [
    (None, 'missing_grade'), ('  ', 'missing_grade'), ('abc', 'grade_not_a_number'),
    ('4.5.1', 'grade_not_a_number'), ('#N/A', 'grade_not_a_number'), (True, 'grade_not_a_number'),
    (float('nan'), 'grade_not_a_number'), (6.5, 'grade_out_of_range'), (0.5, 'grade_out_of_range'),
    ('7,0', 'grade_out_of_range')])
def test_parse_grade_rejects_with_code(value, code):
  grade, reason = workbook.parse_grade(value)
  assert grade is None and reason.split(':')[0] == code


def test_parse_id():
  assert workbook.parse_id(17.0) == '17' and workbook.parse_id(' s-01 ') == 's-01'
  assert workbook.parse_id(None) is None and workbook.parse_id('  ') is None


def test_libreoffice_written_workbook():
  table = workbook.read_workbook(FIXTURES / 'libreoffice_grades.xlsx')
  assert table.sheet == 'Notes' and table.columns == {'id': 1, 'grade': 2, 'photo': 3}
  got = [(r.source_row, r.id_value, r.grade_value, r.photo is not None) for r in table.rows]
  assert got == [(2, 'S01', 4.5, True), (3, 'S02', '4,5', True), (4, 'S03', 3, False),
                 (5, 'S04', None, True), (6, 'S05', 6.5, False)]
  photos = [r.photo for r in table.rows if r.photo]
  assert [p.col for p in photos] == [3, 3, 3]
  assert photos[0].data[:2] == b'\xff\xd8'  # LibreOffice kept the JPEG


def test_absolute_anchor_and_photo_column_preference(tmp_path):
  from openpyxl.drawing.image import Image as XlImage
  from openpyxl.drawing.spreadsheet_drawing import AbsoluteAnchor
  from openpyxl.drawing.xdr import XDRPoint2D, XDRPositiveSize2D
  path = xb.write_workbook(tmp_path / 'w.xlsx', [('a', 4, _photo(1)), ('b', 5, None),
                                                 ('c', 3, None)])
  wb = openpyxl.load_workbook(path)
  ws = wb.active
  ws.row_dimensions[2].height = 60  # row 2 is 60 pt high, others the default 15 pt
  # Row 3 spans 75-90 pt (15 + 60 above it); a picture at y = 80-90 pt lies in row 3.
  img = XlImage(io.BytesIO(_photo(2)))
  img.anchor = AbsoluteAnchor(pos=XDRPoint2D(x=0, y=80 * 12700),
                              ext=XDRPositiveSize2D(cx=500000, cy=10 * 12700))
  ws.add_image(img)
  logo = XlImage(io.BytesIO(_photo(7)))  # a second picture in row 2, outside the photo column
  ws.add_image(logo, 'E2')
  wb.save(path)
  table = workbook.read_workbook(path)
  by_row = {r.source_row: r for r in table.rows}
  assert by_row[3].photo.data == _photo(2) and by_row[3].photo.col is None
  assert by_row[2].photos_in_row == 2 and by_row[2].photo.data == _photo(1)
  assert by_row[4].photo is None


def test_wrong_dimension_tag_does_not_truncate_rows(tmp_path):
  import re
  path = xb.write_workbook(tmp_path / 'dim.xlsx', [('a', 4, None), ('b', 5, None), ('c', 3, None)])
  sheet = 'xl/worksheets/sheet1.xml'
  xb._replace_parts(path, {}, lambda parts: {
      **parts, sheet: re.sub(rb'<dimension ref="[^"]*" ?/>', b'<dimension ref="A1"/>', parts[sheet])})
  with zipfile.ZipFile(path) as zf:
    assert b'<dimension ref="A1"/>' in zf.read(sheet)
  table = workbook.read_workbook(path)
  assert [(r.source_row, r.id_value, r.grade_value) for r in table.rows] == [
      (2, 'a', 4), (3, 'b', 5), (4, 'c', 3)]


# --- Workbooks written by XlsxWriter and re-saved by LibreOffice (fixtures/README.md) ------

from fixtures.make_xlsxwriter_grades import photo_colour  # noqa: E402

XLSXWRITER = FIXTURES / 'xlsxwriter_grades.xlsx'
ROUND_TRIP = FIXTURES / 'xlsxwriter_libreoffice.xlsx'


def _colour_of(photo) -> tuple[int, ...]:
  from PIL import Image
  with Image.open(io.BytesIO(photo.data)) as im:
    return tuple(int(v) for v in np.asarray(im.convert('RGB'))[0, 0])


def _code(reason):
  return reason.split(':', 1)[0] if reason else None


@pytest.mark.parametrize('path', [XLSXWRITER, ROUND_TRIP], ids=['xlsxwriter', 'libreoffice'])
def test_every_photo_lands_on_its_own_row(path):
  table = workbook.read_workbook(path)
  assert table.sheet == 'Grades' and table.columns == {'id': 1, 'grade': 2, 'photo': 3}
  got = {r.id_value: r for r in table.rows}
  assert list(got) == [f'x{k:02d}' for k in range(1, 11)]
  for sid, r in got.items():
    if r.photo is not None:  # the photo in a row is that student's, whatever the anchoring
      assert _colour_of(r.photo) == photo_colour(int(sid[1:])), (sid, r.source_row)
  assert [sid for sid, r in got.items() if r.hidden] == ['x06']
  with_photo = {sid for sid, r in got.items() if r.photo is not None}
  problems = {sid: _code(r.photo_problem) for sid, r in got.items() if r.photo_problem}
  if path == XLSXWRITER:
    assert with_photo == {f'x{k:02d}' for k in (1, 2, 3, 4, 5, 6, 8, 9, 10)} and not problems
    assert {got['x08'].photo.placement, got['x09'].photo.placement} == {'in_cell'}
  else:
    # LibreOffice moved the hidden row's picture into row 8 (x07, who has none) and dropped
    # the in-cell pictures (the cells read #VALUE!): no row may get another student's photo.
    assert with_photo == {f'x{k:02d}' for k in (1, 2, 3, 4, 5, 10)}
    assert problems == {'x06': 'no_photo', 'x07': 'photo_uncertain', 'x08': 'no_photo',
                        'x09': 'no_photo'}
    assert 'row 7 above is hidden' in got['x07'].photo_problem
    assert '#VALUE!' in got['x08'].photo_problem


@pytest.mark.parametrize('path', [XLSXWRITER, ROUND_TRIP], ids=['xlsxwriter', 'libreoffice'])
def test_competing_and_straddling_pictures_are_not_guessed(path):
  table = workbook.read_workbook(path, sheet='Ambiguous')
  got = {r.id_value: (_code(r.photo_problem), r.photo and _colour_of(r.photo)) for r in table.rows}
  expected = {
      'a01': ('photo_ambiguous', None), 'a02': ('photo_ambiguous', None),  # 50% / 50%
      'a03': ('several_photos', None),  # two pictures in C4
      # a04's picture lies 84% in row 6: the anchor (row 5) and the layout (row 6) disagree,
      # so both rows are skipped (issue 24: a photo in two rows' evidence marks both).
      'a04': ('photo_ambiguous', None), 'a05': ('photo_ambiguous', None),
      'a06': (None, photo_colour(26)),  # the logo in column E does not compete
      'a07': (None, None)}
  if path == XLSXWRITER:
    expected.update({'a08': (None, photo_colour(28)), 'a09': (None, photo_colour(29))})
  else:  # LibreOffice moved hidden row 9's picture into row 10
    expected.update({'a08': ('no_photo', None), 'a09': ('several_photos', None)})
  assert got == expected
  by_id = {r.id_value: r for r in table.rows}
  assert '(row 2: 50% / row 3: 50%)' in by_id['a01'].photo_problem
  if path == ROUND_TRIP:
    assert 'row 9 is hidden' in by_id['a09'].photo_problem


@pytest.mark.parametrize('path', [XLSXWRITER, ROUND_TRIP], ids=['xlsxwriter', 'libreoffice'])
def test_formulas_dates_booleans_merged_cells(path):
  from gradejax.data import prepare
  table = workbook.read_workbook(path, sheet='Cells')
  assert table.header_row == 3 and table.blank_rows == 1  # below a merged title; row 10 blank
  entries = prepare._ids_and_grades(table, prepare.Options())
  got = {e.id or table.rows[i].id_value: e.reason_code for i, e in enumerate(entries)}
  common = {'c03': 'grade_not_a_number', 'c04': 'grade_not_a_number', 'c05': 'merged_cell',
            'c06': 'merged_cell', 'c07': 'no_photo'}
  if path == XLSXWRITER:  # XlsxWriter asks for recalculation on load: its results are not real
    assert got == {**common, 'c01': 'grade_formula_not_calculated',
                   'c02': 'grade_formula_not_calculated', 'c08': 'grade_formula_not_calculated'}
  else:  # LibreOffice kept the results (0 for =2*2, as XlsxWriter stored it) and the error
    assert got == {**common, 'c01': 'no_photo', 'c02': 'grade_out_of_range',
                   'c08': 'grade_not_a_number'}
  reasons = {r.id_value: e.reason for r, e in zip(table.rows, entries)}
  assert 'B8:B9' in reasons['c06'] and 'is a date' in reasons['c03']


def test_formula_without_saved_result(tmp_path):
  wb = openpyxl.Workbook()
  ws = wb.active
  ws.append(['id', 'grade'])
  ws.append(['f1', '=2+2.5'])  # openpyxl stores the formula and no result
  ws.append(['f2', 4.5])
  wb.save(tmp_path / 'f.xlsx')
  rows = workbook.read_workbook(tmp_path / 'f.xlsx').rows
  assert rows[0].grade_problem.startswith('grade_formula_not_calculated: the grade cell B2 '
                                          'holds the formula =2+2.5 and has no saved result')
  assert rows[1].grade_problem is None


def test_macro_workbook_old_xls_xlsb_and_zip_bomb(tmp_path):
  xlsm = workbook.read_workbook(FIXTURES / 'libreoffice_grades.xlsm')  # saved by LibreOffice
  assert [r.id_value for r in xlsm.rows if r.photo is not None] == [
      f'x{k:02d}' for k in (1, 2, 3, 4, 5, 10)]
  with pytest.raises(workbook.WorkbookError, match=r'libreoffice_grades\.xls: this is an old binary'):
    workbook.read_workbook(FIXTURES / 'libreoffice_grades.xls')
  xlsb = tmp_path / 'grades.xlsb'
  with zipfile.ZipFile(xlsb, 'w') as zf:
    zf.writestr('xl/workbook.bin', b'\0' * 16)
  with pytest.raises(workbook.WorkbookError, match=r'grades\.xlsb: an Excel binary workbook'):
    workbook.read_workbook(xlsb)
  # sharedStrings.xml of 40 MiB that deflates ~400x: refused before any parsing.
  bomb = tmp_path / 'bomb.xlsx'
  good = xb.write_workbook(tmp_path / 'good.xlsx', [('a', 4, None)])
  with zipfile.ZipFile(good) as src, zipfile.ZipFile(bomb, 'w', zipfile.ZIP_DEFLATED) as zf:
    for name in src.namelist():
      if name != 'xl/sharedStrings.xml':
        zf.writestr(name, src.read(name))
    with zf.open('xl/sharedStrings.xml', 'w', force_zip64=True) as f:
      chunk = b'<si><t>x</t></si>' * (1 << 16)
      for _ in range(40 * (1 << 20) // len(chunk) + 1):
        f.write(chunk)
  assert bomb.stat().st_size < 1 << 20
  with pytest.raises(workbook.WorkbookError, match=r'bomb\.xlsx: the part xl/sharedStrings\.xml '
                     r'would unpack to 40 MiB \(compressed \d+x\); refused as a possible zip bomb'):
    workbook.read_workbook(bomb)


def test_a_logo_across_rows_outside_the_photo_column_is_ignored(tmp_path):
  from openpyxl.drawing.image import Image as XlImage
  from openpyxl.drawing.spreadsheet_drawing import AnchorMarker, TwoCellAnchor
  path = xb.write_workbook(tmp_path / 'w.xlsx', [('a', 4, _photo(1)), ('b', 5, _photo(2))])
  for name, col in (('logo', 4), ('stray', 2)):  # E2:E3 and C2:C3, each half in row 2, half in 3
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    img = XlImage(io.BytesIO(_photo(7)))
    img.anchor = TwoCellAnchor(_from=AnchorMarker(col=col, row=1, rowOff=95250),
                               to=AnchorMarker(col=col + 1, row=2, rowOff=95250))
    ws.add_image(img)
    wb.save(tmp_path / f'{name}.xlsx')
  logo = workbook.read_workbook(tmp_path / 'logo.xlsx')
  assert [(r.photo.data, r.photo_problem) for r in logo.rows] == [(_photo(1), None),
                                                                   (_photo(2), None)]
  stray = workbook.read_workbook(tmp_path / 'stray.xlsx')  # in the photo column: both skipped
  assert [_code(r.photo_problem) for r in stray.rows] == ['photo_ambiguous'] * 2


def test_a_logo_mostly_in_the_header_is_not_a_photo(tmp_path):
  from openpyxl.drawing.image import Image as XlImage
  from openpyxl.drawing.spreadsheet_drawing import AnchorMarker, TwoCellAnchor
  path = xb.write_workbook(tmp_path / 'w.xlsx', [('a', 4, None), ('b', 5, None)],
                           headers=('id', 'grade', 'remarks'))  # no photo column
  wb = openpyxl.load_workbook(path)
  ws = wb.active
  for row_off in (0, 10):  # 15 pt rows: a 20 pt logo in E1 spills 5 pt into row 2, then 15 pt
    img = XlImage(io.BytesIO(_photo(7)))
    img.anchor = TwoCellAnchor(_from=AnchorMarker(col=4, row=0, rowOff=row_off * 12700),
                               to=AnchorMarker(col=5, row=1, rowOff=(row_off + 5) * 12700))
    ws.add_image(img)
    wb.save(tmp_path / f'logo{row_off}.xlsx')
    wb = openpyxl.load_workbook(path)
    ws = wb.active
  rows = workbook.read_workbook(tmp_path / 'logo0.xlsx').rows
  assert [(r.photo, r.photo_problem) for r in rows] == [(None, None), (None, None)]
  rows = workbook.read_workbook(tmp_path / 'logo10.xlsx').rows  # 3/4 in row 2: its picture
  assert rows[0].photo is not None and rows[0].photo.data == _photo(7) and rows[1].photo is None
