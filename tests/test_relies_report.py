"""The report's "What the network relies on" on the toy run of tests/test_attribution_cli.py
(real prepared data, real TFDS, real truth.csv): the section's numbers are the library's
(gradejax.attribution.spray, tcav, relies) on the battery's own held-out-fold maps, the page
shows them, the chance caveat opens the sentence when the verdict says chance, and purity
appears only with the truth."""
import html
import json
import re

import flax.linen as nn
import jax
import numpy as np
import pytest
from PIL import Image

from gradejax import nets, visualize
from gradejax.attribution import registry, relies, spray, tcav
from gradejax.attribution.battery import relies as battery_relies, truth as battery_truth
from gradejax.report import charts
from test_attribution_cli import toy_cue_mask, toy_run  # noqa: F401 - the shared fixture

OPTS = dict(methods=('occlusion',), images='2', patch=4, stride=4, sanity_images=1,
            faithfulness_steps=2, road_fractions=(0.5,), bootstrap=50, causal_size=4,
            causal_random=2)


def _split(module, variables, arrays):
  """The toy net with its head's bias moved so that half the images are predicted each class
  (the threshold at the median logit difference): both classes get strategies."""
  fn = nets.bind(module, variables)
  out = np.asarray(fn(arrays['images'].astype(np.float32) / 255)[0])
  params = jax.tree_util.tree_map(np.array, dict(variables['params']))
  params['Dense_0'] = dict(params['Dense_0'])
  params['Dense_0']['bias'] = params['Dense_0']['bias'] + np.array(
      [0.0, -np.median(out[:, 1] - out[:, 0])], np.float32)
  return dict(variables, params=params)


FOLD = np.array([1, 2, 3, 4, 5])  # rows of the held-out fold (not positions 0..4)


def _fold_all(arrays):
  """The toy data with images s01..s05 in the held-out fold 0 (3 of them carry the cue)."""
  fold = np.zeros(len(arrays['id']), np.int64)
  fold[0] = 1
  return dict(arrays, fold=fold)


def _rows(page: str, caption: str) -> list[list[str]]:
  """The body rows of the table captioned ``caption``, cells unescaped."""
  table = re.search(r'<table>\s*<caption>' + re.escape(html.escape(caption))
                    + r'</caption>(.*?)</table>', page, re.S)
  assert table, caption
  return [[html.unescape(re.sub('<[^>]+>', '', c)) for c in re.findall(r'<td[^>]*>(.*?)</td>', r,
                                                                        re.S)]
          for r in re.findall(r'<tr>(.*?)</tr>', table.group(1), re.S) if '<td' in r]


@pytest.fixture(scope='module')
def with_truth(toy_run, tmp_path_factory):  # noqa: F811
  work, data, module, variables, arrays = toy_run
  out = tmp_path_factory.mktemp('relies_truth')
  path = visualize.make_report(out, module, _split(module, variables, arrays), _fold_all(arrays),
                               data,
                               visualize.Options(**OPTS), cue_mask_fn=toy_cue_mask)
  return out, path.read_text(encoding='utf-8')


def test_strategies_are_spray_of_the_fold_maps_and_the_page_shows_them(  # noqa: F811
    toy_run, with_truth):
  work, data, module, variables, arrays = toy_run
  out, page = with_truth
  fn = nets.bind(module, _split(module, variables, arrays))
  x = arrays['images'][FOLD].astype(np.float32) / 255
  t = np.argmax(np.asarray(fn(x)[0]), axis=1)
  opts = visualize.Options(**OPTS)
  cfg = opts.config()
  maps = np.asarray(registry.heatmap('occlusion', fn, x, t, precision='highest',
                                     **cfg.method_options['occlusion']))
  want = spray.spray(maps, t, arrays['label'][FOLD], num_classes=2, size=16, max_clusters=4)
  names = arrays['class_names']
  assert set(t) == {0, 1}
  # Verdict first, then this section, then the rest.
  titles = re.findall(r'<h2>(.*?)</h2>', page)
  assert titles[:2] == ['Verdict', 'What the network relies on']
  findings, peaks = [], []
  cue_boxes, _ = battery_truth.cue_masks(data, [str(i) for i in arrays['id'][FOLD]],
                                         x.shape[1], None, toy_cue_mask)
  for cls in want:
    rows = _rows(page, f'predicted {names[cls.predicted]!r}')
    assert len(rows) == len(cls.strategies)
    assert sum(int(r[1]) for r in rows) == int(np.sum(t == cls.predicted))
    assert sum(float(r[2]) for r in rows) == pytest.approx(1.0, abs=0.011)
    for r, s in zip(rows, cls.strategies):
      areas = cfg.relies.areas
      checks = spray.causal_checks(
          fn, x[s.members[:16]], t[s.members[:16]],
          np.stack([spray.top_region(s.mean_map, a) for a in areas]), n_random=4,
          batch=len(s.members[:16]), bootstrap=50, seed=0, alpha=0.05 / len(areas),
          fill=cfg.fill['fill'], fill_mode=cfg.fill['fill_mode'],
          blur_sigma=cfg.fill['blur_sigma'], labels=arrays['label'][FOLD][s.members[:16]])
      chk = checks[spray.choose_area(checks)]
      assert r[4].endswith(f'; {relies.share_of_chip(chk.area)}')
      findings.append(relies.StrategyFinding(s, chk, names[cls.predicted]))
      assert int(r[1]) == s.size and float(r[2]) == pytest.approx(s.share, abs=0.005)
      assert r[5].startswith(f'{chk.drop[0]:.2f} [')
      assert r[6].startswith(f'{chk.random_drop[0]:.2f} [')
      # About the labels: the true class's contrast, from the fold's labels (not truth).
      lo, hi = chk.label_excess[1:]
      assert r[9] == (f'{chk.label_excess[0]:.2f} [{lo:.2f}, {hi:.2f}] '
                      f'{"yes" if lo > 0 else "no"}')
      # Purity: share of members carrying the cue (truth.csv: cue = label here).
      cue = arrays['label'][FOLD][s.members] == 1
      assert float(r[-2]) == pytest.approx(np.mean(cue), abs=0.005)
      # Peak in cue: the mean map's maximum within 4 px of each cue-bearing member's box.
      y, x_ = np.unravel_index(np.argmax(s.mean_map), s.mean_map.shape)
      hits = []
      for i in s.members[cue]:
        box = cue_boxes[str(arrays['id'][FOLD][i])]
        yy, xx = np.nonzero(box)
        hits.append(np.min(np.hypot(yy - y, xx - x_)) <= 4.0)
      assert r[-1] == (f'{np.mean(hits):.2f}' if hits else '-')
      peaks.append(r[-1])
  sentence = relies.quotable(relies.select_strategy(findings), [], names)
  lead = re.search(r'<div class="lead"><p>(.*?)</p>', page.split('What the network relies on')[1],
                   re.S).group(1)
  assert html.unescape(lead) == sentence and not sentence.startswith(relies.CHANCE_CAVEAT)
  assert 'purity' in page and 'peak in cue' in page
  assert any(v not in ('-', '0.00') for v in peaks)  # the toy's maps do point at its cue
  for cls in want:
    for j in range(len(cls.strategies)):
      png = Image.open(out / 'report' / 'relies' / f'{names[cls.predicted]}_{j + 1}.png')
      assert png.format == 'PNG'


@pytest.mark.parametrize('predictable', [False, True])
def test_caveat_first_no_purity_without_truth_and_concepts(toy_run, tmp_path,  # noqa: F811
                                                           predictable):
  work, data, module, variables, arrays = toy_run
  (tmp_path / 'eval').mkdir()
  # The answer is 'photo conditions' (baselines on the photos' statistics beat chance). Where
  # the network itself is at chance, the maps explain that network: the chance caveat comes
  # first; where it beats chance, the caveat that a whole-photo condition has no region.
  (tmp_path / 'eval' / 'verdict.json').write_text(json.dumps(
      {'answer': 'photos predict grades through photo conditions', 'predictable': predictable,
       'cv_score': 0.56}))
  caveat = relies.CONDITIONS_CAVEAT if predictable else relies.CHANCE_CAVEAT
  rng = np.random.default_rng(1)
  for name, n in (('stripes', 6), ('random', 42)):  # 42 >= tcav.random_needed(6) = 40
    (tmp_path / 'concepts' / name).mkdir(parents=True)
    for i in range(n):
      img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
      if name == 'stripes':
        img[::2] = 255
      Image.fromarray(img).save(tmp_path / 'concepts' / name / f'{i}.png')
  opts = visualize.Options(**OPTS, concepts=str(tmp_path / 'concepts'), tcav_layer='features')
  # No truth: a data folder without truth.csv (data_dir None), so no purity.
  page = visualize.make_report(tmp_path, module, variables, _fold_all(arrays), None, opts
                               ).read_text(encoding='utf-8')
  section = page.split('<h2>What the network relies on</h2>')[1].split('<h2>')[0]
  lead = html.unescape(re.search(r'<div class="lead"><p>(.*?)</p>', section, re.S).group(1))
  assert lead.startswith(caveat + ' ')
  assert 'purity' not in section
  # Concept rows: TCAV of the folder, recomputed by the library on the fold's images.
  fn = nets.bind(module, variables)
  x = arrays['images'][FOLD].astype(np.float32) / 255
  t = np.argmax(np.asarray(fn(x)[0]), axis=1)
  folders = tcav.read_concept_folders(tmp_path / 'concepts', size=16)
  random = folders.pop('random')
  rows = _rows(section, 'concepts')
  assert len(rows) == len(np.unique(t))
  # the battery's default score: the logit contrast (the library's default is the logit)
  found = tcav.run_tcav_classes(fn, folders, random, {int(k): x[t == k] for k in np.unique(t)},
                                layer='features', key=jax.random.key(0), runs=20,
                                score='contrast')
  for row, k in zip(rows, np.unique(t)):
    [want] = found[int(k)]
    assert row[:3] == ['stripes', arrays['class_names'][k], f'{want.score:.2f}']
    assert row[4] == charts.format_p(want.p_holm)


def test_chance_verdict_reads_the_networks_own_test():
  conditions = 'photos predict grades through photo conditions'
  assert battery_relies.chance_verdict({'answer': conditions, 'predictable': False})
  assert not battery_relies.chance_verdict({'answer': conditions, 'predictable': True})
  assert not battery_relies.chance_verdict({'answer': 'faces predict grades', 'predictable': True})
  assert battery_relies.chance_verdict({'predictable': False})
  assert not battery_relies.chance_verdict(None)
  # A verdict without the network's own test is read by its answer.
  assert battery_relies.chance_verdict({'answer': 'not distinguishable from chance'})
  assert not battery_relies.chance_verdict({'answer': conditions})
  assert battery_relies.conditions_verdict({'answer': conditions, 'predictable': True})
  assert not battery_relies.conditions_verdict({'answer': conditions, 'predictable': False})
  assert not battery_relies.conditions_verdict({'answer': 'faces predict grades',
                                                'predictable': True})
  assert not battery_relies.conditions_verdict(None)


def test_bad_concepts_folder_fails_before_any_work(toy_run, tmp_path):  # noqa: F811
  work, data, module, variables, arrays = toy_run
  with pytest.raises(ValueError, match=r'--concepts .*nowhere: no such folder'):
    visualize.make_report(tmp_path, module, variables, arrays, data,
                          visualize.Options(**OPTS, concepts=str(tmp_path / 'nowhere')))
  for name, n in (('stripes', 6), ('random', 39)):  # one image short of 5 x 6 + 5 x 2
    (tmp_path / 'small' / name).mkdir(parents=True)
    for i in range(n):
      Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / 'small' / name / f'{i}.png')
  with pytest.raises(ValueError, match=r'random/ holds 39 images; .* needs >= 40'):
    visualize.make_report(tmp_path, module, variables, arrays, data,
                          visualize.Options(**OPTS, concepts=str(tmp_path / 'small')))
  with pytest.raises(ValueError, match="unknown attribution method 'occlusion_typo'"):
    visualize.make_report(tmp_path, module, variables, arrays, data,
                          visualize.Options(**OPTS, relies_method='occlusion_typo'))


def test_fold_maps_reuse_the_known_rows_and_compute_only_the_rest(toy_run):  # noqa: F811
  work, data, module, variables, arrays = toy_run
  fn = nets.bind(module, variables)
  cfg = visualize.Options(**OPTS).config()
  inputs = visualize.battery.Inputs(cfg, 'features')
  sentinel = np.full((16, 16), -7.0, np.float32)  # no method paints this: it was reused
  known = {1: (1, sentinel), 4: (0, sentinel)}

  class Unread:
    """The images, refusing to read the known rows (their maps must be reused, not redone)."""
    shape = arrays['images'].shape

    def __getitem__(self, rows):
      assert not set(np.atleast_1d(rows).tolist()) & set(known), rows
      return arrays['images'][rows]

  t, maps = battery_relies.fold_maps(fn, dict(arrays, images=Unread()), FOLD, cfg, inputs,
                                     known)
  assert t[0] == 1 and t[3] == 0
  np.testing.assert_array_equal(maps[[0, 3]], [sentinel, sentinel])
  x = arrays['images'][[2, 3, 5]].astype(np.float32) / 255
  want_t = np.argmax(np.asarray(fn(x)[0]), axis=1)
  want = registry.heatmap('occlusion', fn, x, want_t, precision='highest',
                          **cfg.method_options['occlusion'])
  np.testing.assert_array_equal(t[[1, 2, 4]], want_t)
  np.testing.assert_allclose(maps[[1, 2, 4]], want, rtol=1e-5, atol=1e-6)


class _Headed(nn.Module):
  """A toy classifier that names the representation its head reads (``head_input``), tapped
  at ``extractor/<head_input>`` as gradejax's GradeClassifier taps it."""
  head_input: str = 'descriptor'

  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    x = nets.tap(self, 'map', relu(nn.Conv(4, (3, 3))(images)))
    d = nn.Dense(6)(x.mean(axis=(1, 2)))
    d = nets.tap(self, 'extractor/descriptor', d)
    return nn.Dense(2)(relu(d))


def test_concept_layer_is_the_heads_input_else_the_fallback():
  x = np.zeros((1, 8, 8, 3), np.float32)
  m = _Headed()
  fn = nets.bind(m, m.init(jax.random.key(0), x))
  assert battery_relies.concept_layer(fn, x, 'map') == 'extractor/descriptor'
  m2 = _Headed(head_input='level9')  # names a tap the network does not have
  fn2 = nets.bind(m2, m2.init(jax.random.key(0), x))
  assert battery_relies.concept_layer(fn2, x, 'map') == 'map'
  assert battery_relies.concept_layer(lambda im: fn(im), x, 'map') == 'map'  # no module
