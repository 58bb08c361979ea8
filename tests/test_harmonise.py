"""The verdict tells photo conditions from faces (issue 23): harmonised re-test, effect sizes,
facial aspects, pre-registration.

Worlds are small chip sets (48 px) with one planted cue each and a fixed toy "CNN" whose
features are computed from the chips (block means, sharpness): the harmonised re-test
recomputes them from the harmonised chips, as the evaluation does with the face ResNet.
"""
import json

import numpy as np
import pytest
from PIL import Image

from configs import toy
from gradejax import preregister
from gradejax.data import labels, photo_quality
from gradejax.evaluation import confounds, evaluate, harmonise

N, S = 120, 48


def cfg(**kw):
  c = toy.get_config()
  c.num_permutations, c.bootstrap, c.cv_head.steps = 100, 100, 40
  for k, v in kw.items():
    c[k] = v
  return c


def toy_cnn(chips: np.ndarray) -> np.ndarray:
  """float32 [N, 4*4*3 + 1]: 4x4 block means of the chip and its sharpness (x100)."""
  x = np.asarray(chips, np.float32) / 255.0
  n = len(x)
  blocks = x.reshape(n, 4, S // 4, 4, S // 4, 3).mean((2, 4)).reshape(n, -1)
  sharp = [photo_quality.sharpness(photo_quality._gray(c)) for c in chips]
  return np.concatenate([blocks, 100 * np.array(sharp)[:, None]], 1).astype(np.float32)


def chips_of(rng, n):
  """Label-free chips: a smooth colour field with fine texture, uint8 [n, S, S, 3]."""
  base = rng.uniform(60, 180, (n, 3, 3, 3))
  smooth = np.stack([np.asarray(Image.fromarray(b.astype(np.uint8)).resize((S, S),
                                                                           Image.BILINEAR))
                     for b in base]).astype(np.float32)
  texture = rng.normal(0, 10, (n, S, S, 1))
  return np.clip(smooth + texture, 0, 255).astype(np.uint8)


def plant(kind, chips, y):
  x = chips.astype(np.float32)
  on = y.astype(bool)
  mask = harmonise.face_mask(S)
  if kind == 'brightness':
    x[on] = x[on] * np.array([1.15, 1.08, 1.0])
  elif kind == 'background':
    x[on] = np.where(mask[None, :, :, None], x[on], 0.5 * x[on] + 0.5 * np.array([60, 90, 230]))
  elif kind == 'sharpness':
    x[on] = np.stack([np.asarray(Image.fromarray(c).resize((S // 3, S // 3), Image.BILINEAR)
                                 .resize((S, S), Image.BILINEAR)) for c in chips[on]])
  elif kind == 'eyeband':  # a dark band across the upper face, inside the face mask
    band = np.zeros((S, S), bool)
    band[int(0.27 * S):int(0.40 * S)] = True
    x[on] = np.where((band & mask)[None, :, :, None], 0.45 * x[on], x[on])
  return np.clip(x, 0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def worlds():
  out = {}
  for i, kind in enumerate(('brightness', 'background', 'sharpness', 'eyeband', 'null')):
    rng = np.random.default_rng(40 + i)
    y = (np.arange(N) % 2).astype(np.int32)
    fold = labels.stratified_folds(y, 5, i)
    chips = plant(kind, chips_of(rng, N), y)
    v = evaluate.evaluate_features(cfg(), toy_cnn(chips), y, fold, 2, images=chips,
                                   featurize=toy_cnn, targets={'jpeg_quality': 50, 'side': 24})
    out[kind] = v
  return out


@pytest.mark.parametrize('kind,removed', [('brightness', 'colour'),
                                          ('background', 'background'),
                                          ('sharpness', 'resolution')])
def test_condition_worlds_are_photo_conditions_naming_the_harmonisation(worlds, kind, removed):
  v = worlds[kind]
  hm = v['harmonised']
  assert v['predictable'] and hm['reference']['beats_chance']
  assert v['answer'] == confounds.CONDITIONS and removed in hm['removed_by']
  assert hm[removed]['p_value'] > 0.05 and hm[removed]['cv_score'] < hm['reference']['cv_score']
  others = [k for k in harmonise.KINDS if k not in hm['removed_by']]
  assert others and all(hm[k]['beats_chance'] for k in others)  # only the right one removes it
  text = evaluate.verdict_text(v)
  assert text.startswith('Verdict: PHOTOS PREDICT GRADES THROUGH PHOTO CONDITIONS')
  assert f'Equalising the photos ({harmonise.DESCRIPTIONS[removed]}) removes the signal' in text
  json.dumps({k: x for k, x in v.items() if k != 'arrays'})  # the verdict stays JSON


def test_facial_world_survives_harmonisation_and_names_the_aspect(worlds):
  v = worlds['eyeband']
  hm = v['harmonised']
  assert v['answer'] == confounds.FACES and hm['survives'] and hm['removed_by'] == []
  assert hm['all']['ci95'][0] > 0.5 and hm['all']['retained'] > 0.5
  # The band darkens the chip: colour statistics beat chance, but the intervention shows the
  # signal is not the colour condition (the regression alone would have said 'conditions').
  assert 'image_statistics' in v['explained_by']
  assert not confounds.adds(v['incremental'], v['alpha'], v['min_gain'])
  assert v['facial_aspect']['aspect'] == 'coarse appearance'  # the blurred, harmonised chip
  text = evaluate.verdict_text(v)
  assert 'coarse appearance carries it' in text and 'still beats chance' in text


def test_null_world_is_chance(worlds):
  v = worlds['null']
  assert v['answer'] == confounds.CHANCE and not v['predictable']


def test_harmonisations_equalise_what_they_say():
  rng = np.random.default_rng(3)
  chips = chips_of(rng, 6)
  chips[:3] = plant('brightness', chips[:3], np.ones(3, np.int32))
  mask = harmonise.face_mask(S)
  c = harmonise.harmonise(chips, ('colour',), side=None, quality=50).astype(float)
  m = c[:, mask].mean(1)
  np.testing.assert_allclose(m, m.mean(0, keepdims=True).repeat(6, 0), atol=1.5)  # uint8 steps
  b = harmonise.harmonise(chips, ('background',), side=None, quality=50)
  assert (b[:, ~mask] == 128).all() and (b[:, mask] == chips[:, mask]).all()
  # Half of the chips blurred first, so the sharpness to equalise really differs.
  varied = plant('sharpness', chips, np.array([0, 0, 0, 1, 1, 1], np.int32))
  r = harmonise.harmonise(varied, ('resolution',), side=16, quality=50)
  sharp = [photo_quality.sharpness(photo_quality._gray(x)) for x in r]
  before = [photo_quality.sharpness(photo_quality._gray(x)) for x in varied]
  assert max(before) > 2 * min(before) and max(sharp) <= 1.15 * min(sharp)  # uint8 rounding
  assert max(sharp) < min(before)
  j = harmonise.harmonise(chips, ('jpeg',), side=None, quality=30)
  import io
  buf = io.BytesIO()
  Image.fromarray(chips[0]).save(buf, format='JPEG', quality=30)
  np.testing.assert_array_equal(j[0], np.asarray(Image.open(buf).convert('RGB')))
  assert harmonise.settings({'jpeg_quality': np.array([90.0, 24.7, 100.0]),
                             'format_jpeg': np.array([1.0, 1.0, 0.0])},
                            np.array([300.0, 120.5, 400.0]), 150) == {'jpeg_quality': 24,
                                                                      'side': 120}


def test_gain_needs_the_floor_and_a_ci_above_zero():
  ok = {'p_value': 0.001, 'gain': 0.05, 'gain_ci95': [0.01, 0.09]}
  assert confounds.adds(ok, 0.05, 0.02)
  assert not confounds.adds(dict(ok, gain=0.019), 0.05, 0.02)  # the 0.019 world
  assert not confounds.adds(dict(ok, gain_ci95=[-0.01, 0.09]), 0.05, 0.02)
  assert not confounds.adds(dict(ok, p_value=0.2), 0.05, 0.02)
  # decide: an acquisition baseline that beats chance and a CNN that adds too little.
  b = {'image_quality': {'p_holm': 0.001, 'ci95': [0.99, 1.0], 'cv_score': 0.9997}}
  tiny = dict(ok, gain=0.0003, gain_ci95=[0.0001, 0.0006])
  assert confounds.decide(True, b, tiny, 0.5, 0.05)[0] == confounds.CONDITIONS
  assert confounds.decide(True, b, ok, 0.5, 0.05)[0] == confounds.FACES
  # A facial baseline never makes the answer 'photo conditions'.
  f = {'face_geometry': {'p_holm': 0.001, 'ci95': [0.8, 0.9], 'cv_score': 0.88}}
  assert confounds.decide(True, f, tiny, 0.5, 0.05) == (confounds.FACES, [])


def test_gain_ci_is_the_bootstrap_of_the_difference(worlds):
  inc = worlds['brightness']['incremental']
  lo, hi = inc['gain_ci95']
  assert lo < inc['gain'] < hi and hi - lo < 0.3


def _plan(**kw):
  base = {'config_hash': 'c' * 16, 'dataset': 'd' * 16, 'metric': 'roc_auc', 'alpha': 0.05,
          'min_gain': 0.02, 'num_permutations': 1000, 'cv_folds': 5, 'cv_repeats': 1,
          'battery': ['image_statistics'], 'harmonisations': list(harmonise.KINDS) + ['all'],
          'labelling': 'pivot=median (4.75)'}
  return dict(base, **kw)


def test_plan_hash_covers_every_field_and_compare_lists_deviations(tmp_path):
  changed = {'config_hash': 'e' * 16, 'dataset': 'f' * 16, 'metric': 'mcc', 'alpha': 0.01,
             'min_gain': 0.0, 'num_permutations': 10, 'cv_folds': 3, 'cv_repeats': 2,
             'battery': [], 'harmonisations': [], 'labelling': 'pivot=4.0'}
  assert set(changed) == set(preregister.FIELDS)
  h = preregister.plan_hash(_plan())
  for k, val in changed.items():
    assert preregister.plan_hash(_plan(**{k: val})) != h, k
  path = tmp_path / 'plan.json'
  preregister.write(path, _plan())
  same = preregister.compare(path, _plan())
  assert same['status'] == 'pre-registered' and 'no deviation' in same['text']
  dev = preregister.compare(path, _plan(min_gain=0.0, alpha=0.1))
  assert dev['status'] == 'deviations' and len(dev['deviations']) == 2
  assert "min_gain: planned 0.02, used 0.0" in dev['text']
  # A plan edited after it was written no longer matches its hash.
  d = json.loads(path.read_text())
  d['alpha'] = 0.1
  path.write_text(json.dumps(d))
  assert any('hash does not match' in x for x in preregister.compare(path, _plan(alpha=0.1))[
      'deviations'])
  assert preregister.compare(tmp_path / 'none.json', _plan())['status'] == 'not pre-registered'
