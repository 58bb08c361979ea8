"""Heat-map rendering and the offline HTML report, read back with Pillow and the stdlib."""
import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from gradejax import stats
from gradejax.report import charts, document, panels


def test_colormap_ends_and_signed_centre():
  np.testing.assert_array_equal(panels.colormap(np.array([0.0, 1.0])),
                                panels.SEQUENTIAL[[0, -1]].astype(np.uint8))
  # The diverging map puts zero (0.5) on its neutral middle colour.
  np.testing.assert_array_equal(panels.colormap(np.array(0.5), signed=True),
                                panels.DIVERGING[len(panels.DIVERGING) // 2].astype(np.uint8))
  # Monotone brightness along the sequential map.
  lum = panels.colormap(np.linspace(0, 1, 50)).astype(float).sum(-1)
  assert np.all(np.diff(lum) >= 0)


def test_scale_signed_is_symmetric_and_unsigned_starts_at_zero():
  heat = np.array([[-2.0, 0.0], [1.0, 4.0]])
  s, lo, hi = panels.scale(heat, signed=True, percentile=100)
  assert (lo, hi) == (-4.0, 4.0)
  np.testing.assert_allclose(s, [[0.25, 0.5], [0.625, 1.0]])
  s, lo, hi = panels.scale(np.array([[0.0, 1.0], [2.0, 4.0]]), signed=False, percentile=100)
  assert (lo, hi) == (0.0, 4.0)
  np.testing.assert_allclose(s, [[0, 0.25], [0.5, 1.0]])
  # A constant zero map does not divide by zero.
  assert np.all(np.isfinite(panels.scale(np.zeros((3, 3)), signed=False)[0]))


def test_panel_png_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
  heat = np.zeros((20, 30))
  heat[5, 7] = 1.0
  panel = panels.heat_panel(image, heat, signed=False, title='saliency')
  # Small panels are enlarged by an integer factor (150 / 20 -> 8), colour bar beside them.
  assert panel.width > 30 * 8 and panel.height == 20 * 8 + 14
  path = tmp_path / 'p.png'
  panels.save_png(panel, path)
  back = Image.open(path)
  assert back.format == 'PNG' and back.mode == 'RGB' and back.size == panel.size
  assert not {k for k in back.info if k not in ('dpi', 'gamma')}  # no text metadata
  np.testing.assert_array_equal(np.asarray(back), np.asarray(panel))
  # The hottest pixel is drawn in the colour map's top colour blended over grey.
  ov, _, _ = panels.overlay(image, heat)
  grey = image[5, 7].astype(float).mean()
  expected = np.round(0.4 * grey + 0.6 * panels.SEQUENTIAL[-1]).astype(np.uint8)
  np.testing.assert_array_equal(np.asarray(ov)[5, 7], expected)
  g = panels.grid([[panel, panel], [panel]], ['a', 'b'])
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


# --- the verdict's figures and section -------------------------------------------------------
import html
import html.parser
import json
import xml.etree.ElementTree as ET

import jax.numpy as jnp

from configs import toy
from gradejax.data import labels as labels_lib
from gradejax import stats
from gradejax.evaluation import evaluate
from gradejax.report import verdict

SVG = '{http://www.w3.org/2000/svg}'


def test_roc_curve_area_equals_the_mann_whitney_auc_with_ties():
  rng = np.random.default_rng(1)
  y = rng.integers(0, 2, 200)
  s = np.round(rng.normal(size=200) + 0.8 * y, 1)  # rounded: many tied scores
  fpr, tpr = stats.roc_curve(y, s)
  assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
  assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
  want = float(stats.roc_auc(jnp.asarray(y), jnp.asarray(s, jnp.float32)))
  assert np.trapezoid(tpr, fpr) == pytest.approx(want, abs=1e-6)
  grid, lo, hi = stats.roc_band(y, s, n=100, seed=0)
  inside = (np.interp(grid, fpr, tpr) >= lo - 1e-9) & (np.interp(grid, fpr, tpr) <= hi + 1e-9)
  assert np.all(lo <= hi) and inside.mean() > 0.9 and (hi - lo).max() > 0.05


def test_null_histogram_bars_are_the_histogram_and_mark_the_observed_score():
  null = np.random.default_rng(0).normal(0.5, 0.03, 300)
  svg = charts.svg_null_histogram(null, 0.71, 1 / 1001, 'ROC AUC', chance=0.5, bins=20)
  root = ET.fromstring(svg)
  bars = [r for r in root.iter(SVG + 'rect') if r.get('class') == 'bar']
  heights = np.array([float(b.get('height')) for b in bars])
  counts, _ = np.histogram(null, bins=20, range=(min(null.min(), 0.5) - 0.04 * (
      0.71 - min(null.min(), 0.5)), 0.71 + 0.04 * (0.71 - min(null.min(), 0.5))))
  counts = counts[counts > 0]
  np.testing.assert_allclose(heights / heights.max(), counts / counts.max(), atol=0.01)
  texts = ' '.join(t.text or '' for t in root.iter(SVG + 'text'))
  assert 'observed 0.71, p < 0.001' in texts
  line = next(l for l in root.iter(SVG + 'line') if l.get('class') == 'observed')
  xs = [float(b.get('x')) + float(b.get('width')) for b in bars]
  assert float(line.get('x1')) > max(xs)  # observed far right of every null score


def test_bars_and_confusion_matrix_show_their_numbers():
  root = ET.fromstring(charts.svg_bars(['CNN', 'majority'], [0.8, 0.5], [(0.7, 0.9), None],
                                        chance=0.5))
  texts = [t.text for t in root.iter(SVG + 'text')]
  assert '0.80 [0.70, 0.90]' in texts and '0.50' in texts and 'chance' in texts
  bars = [r for r in root.iter(SVG + 'rect') if r.get('class') == 'bar']
  assert float(bars[0].get('width')) == pytest.approx(1.6 * float(bars[1].get('width')), 1e-2)
  root = ET.fromstring(charts.svg_confusion(np.array([[178, 28], [26, 197]]), ['low', 'high']))
  texts = [t.text for t in root.iter(SVG + 'text')]
  assert {'178', '28', '26', '197', 'low', 'high', '86%', '14%', '12%', '88%'} <= set(texts)


class _Visible(html.parser.HTMLParser):
  """Visible text of a page (no <style>, no folded <details>), and the charts in order."""

  def __init__(self):
    super().__init__()
    self.text, self.events, self._hidden = [], [], 0

  def handle_starttag(self, tag, attrs):
    if tag in ('style', 'details'):
      self._hidden += 1
    if tag in ('svg', 'h2', 'img'):
      self.events.append(tag)

  def handle_endtag(self, tag):
    if tag in ('style', 'details'):
      self._hidden -= 1

  def handle_data(self, data):
    if not self._hidden and data.strip():
      self.text.append(data.strip())
      self.events.append('text:' + data.strip())


@pytest.fixture(scope='module')
def evaluated(tmp_path_factory):
  """A real evaluation (toy config, few permutations) of features with a planted signal."""
  rng = np.random.default_rng(0)
  y = (np.arange(150) % 2).astype(np.int32)
  x = rng.normal(size=(150, 8)).astype(np.float32)
  x[:, 0] += 1.2 * y
  c = toy.get_config()
  c.num_permutations, c.permutation_chunk, c.bootstrap, c.cv_head.steps = 50, 50, 200, 50
  v = evaluate.evaluate_features(c, x, y, labels_lib.stratified_folds(y, 5, 0), 2)
  workdir = tmp_path_factory.mktemp('run')
  evaluate.write_verdict(workdir, v)
  (workdir / 'config.json').write_text(json.dumps({'class_names': ['low', 'high']}))
  return workdir, v


def test_verdict_section_quotes_first_then_figures_and_folds_the_json(evaluated):
  workdir, v = evaluated
  arrays = np.load(workdir / 'eval' / 'arrays.npz')
  assert arrays['null'].shape == (50,) and arrays['oof'].shape == (150, 2)
  assert arrays['bootstrap'].shape == (200,)
  # The arrays are those the verdict's numbers come from.
  assert float(np.mean(arrays['null'])) == pytest.approx(v['null_mean'], abs=1e-6)
  assert np.percentile(arrays['bootstrap'], 2.5) == pytest.approx(v['ci95'][0], abs=1e-6)
  path = document.write(workdir / 'report' / 'index.html', 'T', [verdict.section(workdir)])
  page = path.read_text(encoding='utf-8')
  p = _Visible()
  p.feed(page)
  after = p.events[p.events.index('h2') + 2:]  # after the h2 and its text
  first = after[0][len('text:'):]
  assert first == verdict.quotable(v)
  assert v['answer'] == 'faces predict grades'  # the fixture's world has a face-local cue
  assert first.startswith('Faces predict grades: cross-validated ROC AUC')
  assert f'{v["cv_score"]:.2f}' in first and 'p < 0.001' not in first  # p >= 1/51 here
  assert f'p = {v["p_value"]:.3f}' in first
  assert after.index('svg') > 0 and after.count('svg') == 4  # null, ROC, confusion, baselines
  txt = (workdir / 'eval' / 'verdict.txt').read_text().splitlines()
  assert txt[0] in p.text  # verdict.txt is shown
  visible = ' '.join(p.text)
  assert not re.findall(r'\d\.\d{5,}', visible), 'unrounded floats in the visible text'
  # The raw JSON is there, folded, and parses back to verdict.json.
  raw = re.search(r'<details><summary>[^<]*</summary><pre>(.*?)</pre></details>', page, re.S)
  assert json.loads(html.unescape(raw.group(1))) == json.loads(
      (workdir / 'eval' / 'verdict.json').read_text())
  assert 'arrays' not in json.loads((workdir / 'eval' / 'verdict.json').read_text())


def test_verdict_section_without_arrays_or_baselines_still_renders(tmp_path):
  (tmp_path / 'eval').mkdir()
  (tmp_path / 'eval' / 'verdict.json').write_text(json.dumps(
      {'verdict': 'not distinguishable from chance', 'predictable': False, 'metric': 'mcc',
       'cv_score': 0.0123456789, 'p_value': 0.4567891}))
  s = verdict.section(tmp_path)
  assert s.lead[0] == ('Grades could not be told from the photos better than chance: '
                       'cross-validated MCC 0.01, permutation test p = 0.46.')
  assert not s.charts
  assert 'run the evaluation' in verdict.section(tmp_path / 'none').paragraphs[0]


def test_quotable_names_the_explaining_baselines_and_the_power_of_a_null_answer():
  base = dict(metric='roc_auc', cv_score=0.951, ci95=[0.93, 0.97], chance=0.5, p_value=0.001,
              num_permutations=1000, num_examples=430, folds=5, repeats=1)
  conditions = dict(base, answer='photos predict grades through photo conditions',
                    predictable=True, explained_by=['image_quality'],
                    baselines={'image_quality': {'cv_score': 0.9996, 'ci95': [1.0, 1.0]},
                               'background': {'cv_score': 0.51}})
  text = verdict.quotable(conditions)
  assert text.startswith('Photos predict grades through photo conditions: cross-validated ROC '
                         'AUC 0.95')
  assert 'explained by image quality 1.00' in text and 'background' not in text
  # Faces predict grades and a photo condition also beats chance: the CNN adds to it, so the
  # sentence must not say the signal is "explained by" it.
  faces = dict(base, answer='faces predict grades', predictable=True,
               explained_by=['face_geometry'],
               baselines={'face_geometry': {'cv_score': 0.605}},
               incremental={'with_cnn_score': 0.922, 'baselines_score': 0.639, 'p_value': 0.001})
  text = verdict.quotable(faces)
  assert text.startswith('Faces predict grades: cross-validated ROC AUC 0.95')
  assert 'explained by' not in text
  assert ('beyond photo conditions that also beat chance (face geometry 0.60; stacked with them '
          '0.92 vs 0.64, p = 0.001)') in text
  null = dict(base, answer='not distinguishable from chance', predictable=False, cv_score=0.47,
              p_value=0.81, power={'power': 0.8, 'min_detectable_auc': 0.5843})
  text = verdict.quotable(null)
  assert 'smallest ROC AUC detectable with 80% power 0.58' in text
  # Power is only quoted beside a null answer.
  assert 'detectable' not in verdict.quotable(dict(null, predictable=True))
