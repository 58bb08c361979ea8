"""Which row owns each picture, on hand-made layouts (15-pt rows: row r spans
[15 (r - 1), 15 r) points): the gaps mutation testing found in gradejax/data/ownership.py
(issue 22; benchmarks/mutation.py, RESULTS.md)."""
from gradejax.data import ownership
from gradejax.data.pictures import Layout, Photo


def _photo(row, span, col=2, cols=(2,), anchor='', placement='anchored'):
  return Photo(row=row, col=col, data=b'', part='p', placement=placement, span=span, cols=cols,
               anchor=anchor)


def _owner(p, data_rows=(2, 3, 4, 5), photo_col=None, layout=None):
  owned, problems = ownership.assign_photos([p], layout or Layout(None), set(data_rows), 2,
                                            photo_col)
  assert all(len(v) == 1 for v in owned.values())
  return sorted(owned), problems


def test_in_cell_unplaced_hidden_and_header_pictures():
  assert _owner(_photo(3, None, placement='in_cell')) == ([3], {})
  assert _owner(_photo(4, None)) == ([4], {})  # anchored without a span: its anchor
  assert _owner(_photo(1, None, placement='in_cell')) == ([], {})  # the header's: not a student's
  assert _owner(_photo(3, (30.0, 30.0))) == ([3], {})  # not visible: the anchor row
  assert _owner(_photo(9, (45.0, 45.0), col=None)) == ([4], {})  # absolute: the row at its top
  # Half of it in the header: a logo, ignored; a little less than half: a student's photo.
  assert _owner(_photo(2, (7.5, 22.5))) == ([], {})
  assert _owner(_photo(2, (8.0, 23.0))) == ([2], {})


def test_anchor_row_share_and_the_only_student_row():
  assert _owner(_photo(3, (37.0, 52.0))) == ([3], {})  # 8 of 15 pt (53%) in the anchor row
  owned, problems = _owner(_photo(3, (38.0, 53.0), anchor='B3'))  # 7 of 15 pt (47%)
  assert owned == [] and sorted(problems) == [3, 4]
  assert problems[3] == problems[4] == (
      'photo_ambiguous: the picture anchored at B3 lies across student rows 3, 4 '
      '(row 3: 47% / row 4: 53%); move it inside its own row (or make the rows taller)')
  # 15 of 30.55 pt in the anchor row, 15 in a blank row above, 0.55 pt (under 2%) below:
  # the sliver does not count, so the anchor row is the only student row it covers.
  assert _owner(_photo(3, (15.0, 45.55)), data_rows=(3, 4, 5)) == ([3], {})
  assert _owner(_photo(3, (15.0, 46.0)), data_rows=(3, 4, 5))[0] == []
  # None of it in its anchor row: both rows skipped, the anchor named.
  owned, problems = _owner(_photo(3, (45.0, 60.0), anchor='B3'))
  assert owned == [] and sorted(problems) == [3, 4]
  assert problems[3].endswith('(row 3: 0% / row 4: 100%) (none of it in its anchor row 3); '
                              'move it inside its own row (or make the rows taller)')


def test_absolute_or_blank_row_anchors_need_a_two_thirds_majority():
  assert _owner(_photo(3, (35.0, 50.0), col=None)) == ([3], {})  # 10 of 15 pt = 2/3
  owned, problems = _owner(_photo(3, (36.0, 51.0), col=None))  # 9 of 15 pt
  assert owned == [] and sorted(problems) == [3, 4] and 'none of it' not in problems[3]
  assert _owner(_photo(3, (30.0, 40.0), col=None)) == ([3], {})  # one student row
  # Anchored in a blank row and covering no student row: the row holding most of it (8 pt in
  # row 6, 10 in row 7).
  assert _owner(_photo(6, (82.0, 100.0)), data_rows=(2, 3)) == ([7], {})
  # Ambiguous outside the photo column: a logo, no problem; inside it: a problem.
  assert _owner(_photo(3, (38.0, 53.0), cols=(5,)), photo_col=2) == ([], {})
  assert sorted(_owner(_photo(3, (38.0, 53.0), cols=(2,)), photo_col=2)[1]) == [3, 4]
  assert sorted(_owner(_photo(3, (38.0, 53.0), cols=()), photo_col=2)[1]) == [3, 4]


def test_choose_photo_one_per_row():
  rows = Layout(None)
  a, b = _photo(3, None, col=2, cols=()), _photo(3, None, col=3, cols=(3, 4), anchor='C3')
  assert ownership.choose_photo(3, [], 2, rows) == (None, None)
  assert ownership.choose_photo(3, [b], 2, rows) == (b, None)
  assert ownership.choose_photo(3, [a, b], 2, rows) == (a, None)  # the one in the photo column
  assert ownership.choose_photo(3, [a, b], 4, rows) == (b, None)
  none, msg = ownership.choose_photo(3, [a, b], None, rows)
  assert none is None and msg == ('several_photos: 2 pictures in this row (at B3, C3); keep one '
                                  'photo per row')
  rows.hidden.add(4)
  assert ownership.choose_photo(3, [a, b], None, rows)[1].endswith(
      '; row 4 is hidden: programs that re-save a workbook may move a hidden row\'s picture '
      'into the next row. Unhide it, check the photos and save again')
  rows.hidden = {2}
  assert 'row 2 is hidden' in ownership.choose_photo(3, [a, b], None, rows)[1]


def test_hidden_row_doubts_name_the_rows_below_each_block():
  p = [_photo(0, None)]
  data = set(range(2, 12))
  # Block 3-4 hidden: 3 has a picture, 4 none; row 5 (visible, below) is suspect, 3 is not.
  # Block 8 hidden, no picture; 9 below has one. Hidden 1 (the header) is ignored.
  out = ownership.hidden_row_doubts({3: p, 5: p, 9: p, 2: p}, {}, {1, 3, 4, 8}, data, 1)
  assert sorted(out) == [4, 5, 8, 9]
  assert out[5].startswith('photo_uncertain: row 4 above is hidden and has no picture;')
  assert out[4].startswith('no_photo: this hidden row has no picture, and the picture in row 5 ')
  assert out[9].startswith('photo_uncertain: row 8 above')
  # Two hidden rows without pictures in one block name each other together.
  out = ownership.hidden_row_doubts({6: p}, {}, {4, 5}, data, 1)
  assert sorted(out) == [4, 5, 6] and out[6].startswith('photo_uncertain: row 4, 5 above')
  # A first block with nothing to doubt does not stop the search: the second block's doubts.
  out = ownership.hidden_row_doubts({3: p, 9: p}, {}, {3, 8}, data, 1)
  assert sorted(out) == [8, 9]
  # Nothing to doubt: the hidden row has its picture, is ambiguous, or nothing lies below.
  assert ownership.hidden_row_doubts({4: p, 5: p}, {}, {4}, data, 1) == {}
  assert ownership.hidden_row_doubts({5: p}, {4: 'photo_ambiguous'}, {4}, data, 1) == {}
  assert ownership.hidden_row_doubts({}, {}, {4}, data, 1) == {}
  assert ownership.hidden_row_doubts({5: p}, {}, {4}, {2, 3}, 1) == {}  # not a student row
