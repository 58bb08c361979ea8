"""Heat-map rendering and the offline HTML report, read back with Pillow and the stdlib."""
import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from gradejax.report import figures, document


def test_colormap_ends_and_signed_centre():
  np.testing.assert_array_equal(figures.colormap(np.array([0.0, 1.0])),
                                figures.SEQUENTIAL[[0, -1]].astype(np.uint8))
  # The diverging map puts zero (0.5) on its neutral middle colour.
  np.testing.assert_array_equal(figures.colormap(np.array(0.5), signed=True),
                                figures.DIVERGING[len(figures.DIVERGING) // 2].astype(np.uint8))
  # Monotone brightness along the sequential map.
  lum = figures.colormap(np.linspace(0, 1, 50)).astype(float).sum(-1)
  assert np.all(np.diff(lum) >= 0)


def test_scale_signed_is_symmetric_and_unsigned_starts_at_zero():
  heat = np.array([[-2.0, 0.0], [1.0, 4.0]])
  s, lo, hi = figures.scale(heat, signed=True, percentile=100)
  assert (lo, hi) == (-4.0, 4.0)
  np.testing.assert_allclose(s, [[0.25, 0.5], [0.625, 1.0]])
  s, lo, hi = figures.scale(np.array([[0.0, 1.0], [2.0, 4.0]]), signed=False, percentile=100)
  assert (lo, hi) == (0.0, 4.0)
  np.testing.assert_allclose(s, [[0, 0.25], [0.5, 1.0]])
  # A constant zero map does not divide by zero.
  assert np.all(np.isfinite(figures.scale(np.zeros((3, 3)), signed=False)[0]))


def test_panel_png_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
  heat = np.zeros((20, 30))
  heat[5, 7] = 1.0
  panel = figures.heat_panel(image, heat, signed=False, title='saliency')
  # Small panels are enlarged by an integer factor (150 / 20 -> 8), colour bar beside them.
  assert panel.width > 30 * 8 and panel.height == 20 * 8 + 14
  path = tmp_path / 'p.png'
  figures.save_png(panel, path)
  back = Image.open(path)
  assert back.format == 'PNG' and back.mode == 'RGB' and back.size == panel.size
  assert not {k for k in back.info if k not in ('dpi', 'gamma')}  # no text metadata
  np.testing.assert_array_equal(np.asarray(back), np.asarray(panel))
  # The hottest pixel is drawn in the colour map's top colour blended over grey.
  ov, _, _ = figures.overlay(image, heat)
  grey = image[5, 7].astype(float).mean()
  expected = np.round(0.4 * grey + 0.6 * figures.SEQUENTIAL[-1]).astype(np.uint8)
  np.testing.assert_array_equal(np.asarray(ov)[5, 7], expected)
  g = figures.grid([[panel, panel], [panel]], ['a', 'b'])
  assert g.width >= 2 * panel.width and g.height >= 2 * panel.height


def test_report_is_self_contained(tmp_path):
  img = Image.fromarray(np.full((4, 5, 3), 200, np.uint8))
  sections = [document.Section('S', ['<b>escaped</b>'],
                             [document.Table(('a', 'b'), [('x', 0.5), ('y', True)])],
                             [document.Figure(img, 'fig')], [('other', '../featurevis/index.html')])]
  path = document.write(tmp_path / 'r' / 'index.html', 'T', sections)
  text = path.read_text(encoding='utf-8')
  assert document.PRIVACY_NOTE in text and '&lt;b&gt;escaped' in text
  assert not re.search(r'(src|href)="(https?:)?//', text)
  uris = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
  assert len(uris) == 1
  back = Image.open(io.BytesIO(base64.b64decode(uris[0])))
  np.testing.assert_array_equal(np.asarray(back), np.asarray(img))
  with pytest.raises(ValueError, match='relative'):
    document.to_html('T', [document.Section('S', links=[('x', 'https://example.org')])])
