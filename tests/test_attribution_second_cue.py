"""The demo's second planted cue (cue_shape='tag'): a square badge low on the jaw, another shape
and place than the round cheek sticker; its truth box must hold every pixel it changes, and the
sticker workbook must stay as it was."""
import numpy as np
import pytest

from gradejax.data import demo_data, portraits


@pytest.mark.parametrize('row', [0, 3])
def test_tag_changes_only_pixels_near_its_box(row):
  plain, face, none = demo_data.render_row(0, row, cue=False, cue_shape='tag')
  marked, face2, box = demo_data.render_row(0, row, cue=True, cue_shape='tag')
  assert none is None and face == face2
  sticker_plain, _, _ = demo_data.render_row(0, row, cue=False)
  np.testing.assert_array_equal(plain, sticker_plain)  # the portrait itself is the same
  diff = np.abs(marked.astype(int) - plain).sum(axis=-1) > 8
  ys, xs = np.nonzero(diff)
  x0, y0, x1, y1 = box
  margin = 3  # the photo's final 0.7 px blur and the soft edge spill a little
  assert xs.min() >= x0 - margin and xs.max() <= x1 + margin
  assert ys.min() >= y0 - margin and ys.max() <= y1 + margin
  assert diff.sum() > 0.5 * (x1 - x0) * (y1 - y0)  # and it is painted, not faint
  # another place than the sticker: below the mouth line, and square (box ~ as wide as tall)
  _, _, sbox = demo_data.render_row(0, row, cue=True)
  assert y0 > face.mouth[1] - 5 and y0 > sbox[3]
  assert abs((x1 - x0) - (y1 - y0)) < 0.3 * (x1 - x0)


def test_sticker_default_unchanged_and_bad_shape_refused():
  a = demo_data.render_row(0, 2, cue=True)
  b = demo_data.render_row(0, 2, cue=True, cue_shape='sticker')
  np.testing.assert_array_equal(a[0], b[0])
  assert a[2] == b[2]
  with pytest.raises(ValueError, match='cue_shape'):
    demo_data.render_row(0, 2, cue=True, cue_shape='star')
  assert portraits.TAG_HALF < portraits.STICKER_RADIUS + portraits.STICKER_OUTLINE
