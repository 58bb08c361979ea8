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
  # A facial aspect (the blurred baseline runs on the fully harmonised chips, whose quantile
  # colour matching also flattens the band's contrast, so the CNN may add detail beyond it).
  aspect = v['facial_aspect']['aspect']
  assert aspect in ('coarse appearance', confounds.DETAIL)
  text = evaluate.verdict_text(v)
  assert f'{aspect} carries it' in text and 'still beats chance' in text


def test_null_world_is_chance(worlds):
  v = worlds['null']
  assert v['answer'] == confounds.CHANCE and not v['predictable']
  # At chance there is no effect to keep: the lines give scores and p, not a share of noise.
  text = evaluate.verdict_text(v)
  assert not v['harmonised']['reference']['beats_chance']
  assert 'the re-test cannot speak' in text and 'of the effect kept' not in text
  assert '% of the effect kept' in evaluate.verdict_text(worlds['eyeband'])


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
  # In float (uint8 rounding noise dominates the Laplacian of a low-passed chip); sharpness
  # relative to the chip's contrast (a brighter chip is not a sharper one).
  xf = varied.astype(np.float32) / 255.0
  r = harmonise.resolution(xf, 16, harmonise.common_sigma(varied), mask)
  var = harmonise.contrast(harmonise.jnp.asarray(xf), mask)
  rel = lambda c: np.asarray(harmonise.relative_sharpness(harmonise.jnp.asarray(c), mask, var))
  sharp, before = rel(r), rel(xf)
  assert max(before) > 2 * min(before) and max(sharp) <= 1.15 * min(sharp)  # uint8 rounding
  assert max(sharp) < min(before)
  j = harmonise.harmonise(chips, ('jpeg',), side=None, quality=30, sigma=0.0)  # no low-pass
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
          'min_gain': 0.02, 'min_retained': 0.5, 'num_permutations': 1000, 'cv_folds': 5,
          'cv_repeats': 1, 'battery': ['image_statistics'], 'harmonisations': list(harmonise.KINDS) + ['all'],
          'labelling': 'pivot=median (4.75)'}
  return dict(base, **kw)


def test_plan_hash_covers_every_field_and_compare_lists_deviations(tmp_path):
  changed = {'config_hash': 'e' * 16, 'dataset': 'f' * 16, 'metric': 'mcc', 'alpha': 0.01,
             'min_gain': 0.0, 'min_retained': 0.25, 'num_permutations': 10, 'cv_folds': 3, 'cv_repeats': 2,
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


def test_quantile_colour_undoes_a_tone_curve():
  """A gamma curve changes the histogram's shape, not only its mean and sd: per-channel
  quantile matching makes every chip's face-region quantiles the pooled ones; mean/sd
  matching does not."""
  rng = np.random.default_rng(5)
  x = chips_of(rng, 8).astype(np.float32) / 255.0
  x[:4] = x[:4] ** 0.5
  mask = harmonise.face_mask(S)
  q = np.linspace(0.05, 0.95, 7)

  def spread(out):  # worst gap between two chips' quantiles, per channel
    qs = np.quantile(out[:, mask], q, axis=1)  # [Q, N, 3]
    return float((qs.max(1) - qs.min(1)).max())

  before = spread(x)
  assert spread(harmonise.colour(x, mask)) < 0.02 < 0.1 < before
  assert spread(harmonise.colour(x, mask, 'moments')) > 0.04


def test_survival_needs_chance_beaten_and_the_share_kept():
  r = lambda score, beats: {'cv_score': score, 'beats_chance': beats,
                            'retained': (score - 0.5) / 0.3}
  res = {'colour': r(0.78, True), 'jpeg': r(0.62, True), 'all': r(0.60, True)}
  o = harmonise.outcome(res, ('colour', 'jpeg'), 0.5, 0.02, 0.5)
  # jpeg keeps 40% of the effect (0.62 of 0.80), all 33%: both beat chance yet are removed.
  assert o == {'removed_by': ['jpeg'], 'min_retained': 0.5, 'survives': False}
  assert harmonise.outcome(res, ('colour', 'jpeg'), 0.5, 0.02, 0.0)['survives']
  res['all'] = r(0.515, True)  # kept, but under min_gain over chance
  assert not harmonise.outcome(res, ('colour',), 0.5, 0.02, 0.0)['survives']
  res['all'] = r(0.75, False)
  assert not harmonise.outcome(res, ('colour',), 0.5, 0.02, 0.0)['survives']


def test_common_lowpass_reaches_the_lowest_cutoff_and_precedes_the_jpeg():
  rng = np.random.default_rng(6)
  chips = chips_of(rng, 6)
  varied = chips.copy()  # a box kernel (not the Gaussian of the low-pass) on half of them
  from PIL import ImageFilter
  varied[3:] = np.stack([np.asarray(Image.fromarray(c).filter(ImageFilter.BoxBlur(2)))
                         for c in chips[3:]])
  cut = harmonise.cutoffs(varied.astype(np.float32) / 255.0)
  assert cut[3:].max() < cut[:3].min()  # the blurred chips have the lower cutoff
  sigma = harmonise.common_sigma(varied)
  assert sigma == pytest.approx(harmonise.lowpass_sigma(float(cut.min())))
  assert 0.5 < sigma < 4.0
  # jpeg alone: the common low-pass first, then the encoding (blocks filtered, not doubled).
  j = harmonise.harmonise(varied, ('jpeg',), side=None, quality=30)
  blurred = np.asarray(harmonise._blur(varied.astype(np.float32) / 255.0, sigma=sigma,
                                       edge='edge'))
  np.testing.assert_array_equal(j, harmonise.harmonise(
      np.round(blurred * 255).astype(np.uint8), ('jpeg',), side=None, quality=30, sigma=0.0))
  # resolution: the low-pass is applied to every chip (sharp ones lose their high band).
  r = harmonise.harmonise(varied, ('resolution',), side=None, quality=50)
  xf = varied.astype(np.float32) / 255.0
  mask = harmonise.face_mask(S)
  matched_only = np.round(harmonise.resolution(xf, None, 0.0, mask) * 255).astype(np.uint8)
  assert np.abs(r.astype(int) - matched_only).mean() > 0.5  # more than the sharpness match
  f, p_before = harmonise.spectrum(varied[:3].astype(np.float32) / 255.0)
  _, p_after = harmonise.spectrum(r[:3].astype(np.float32) / 255.0)
  high = f > 0.3
  assert (p_after[:, high].mean(1) < 0.1 * p_before[:, high].mean(1)).all()
