"""Permutation test, bootstrap and verdict on synthetic features with a known answer."""
import json

import jax
import numpy as np
import pytest
import scipy.stats

from configs import toy
from gradejax.evaluation import crossval, evaluate
from gradejax.data import labels


def make(n=120, d=16, shift=0.0, seed=0):
  rng = np.random.default_rng(seed)
  y = (np.arange(n) % 3 == 0).astype(np.int32)  # imbalanced: 1/3 positives
  x = rng.normal(size=(n, d)).astype(np.float32)
  x[:, 0] += shift * y
  return x, y, labels.stratified_folds(y, 5, seed)


def cfg(**kw):
  c = toy.get_config()
  c.num_permutations, c.bootstrap = 100, 200
  for k, v in kw.items():
    c[k] = v
  return c


def test_separable_features_are_predictable():
  x, y, fold = make(shift=3.0)
  v = evaluate.evaluate_features(cfg(), x, y, fold, 2)
  assert v['p_value'] < 0.01 and v['p_value'] == pytest.approx(1 / 101)
  assert v['cv_score'] > 0.9 and v['ci95'][0] > 0.5
  assert v['verdict'] == 'predictable'
  # 80 negatives, 40 positives: every training fold's majority is class 0, right on 2/3 of the
  # examples; any constant prediction scores chance (0.5) in ROC-AUC.
  assert v['baselines']['majority_class'] == {'cv_score': 0.5, 'accuracy': pytest.approx(2 / 3)}


def test_bootstrap_ci_is_the_percentile_interval_of_resampled_aucs():
  # Recomputed from the documented recipe: examples resampled with replacement by
  # default_rng(seed + 2), each resample's out-of-fold ROC-AUC from scipy's Mann-Whitney U
  # (ties count 1/2), averaged over repeats, and the 2.5th and 97.5th percentiles.
  x, y, fold = make(shift=0.7, seed=6)
  c = cfg(cv_repeats=2)
  v = evaluate.evaluate_features(c, x, y, fold, 2)
  h = crossval.from_config(c, 2)
  folds = crossval.cv_folds(y, fold, c.cv_folds, c.cv_repeats, c.seed)
  _, oof = crossval.observed(h, x, y, folds, jax.random.fold_in(jax.random.key(c.seed), 2))
  oof = oof.astype(np.float64)

  def auc(labels, scores):
    pos, neg = scores[labels == 1], scores[labels == 0]
    return scipy.stats.mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg))

  assert v['cv_score'] == pytest.approx(np.mean([auc(y, o[:, 1]) for o in oof]), abs=1e-5)
  idx = np.random.default_rng(c.seed + 2).integers(0, len(y), size=(c.bootstrap, len(y)))
  ref = [np.mean([auc(y[i], o[i, 1]) for o in oof]) for i in idx]
  np.testing.assert_allclose(v['ci95'], np.percentile(ref, [2.5, 97.5]), atol=1e-6)


def test_noise_is_not_predictable():
  x, y, fold = make(shift=0.0, seed=1)
  v = evaluate.evaluate_features(cfg(), x, y, fold, 2)
  assert v['p_value'] > 0.05
  assert v['verdict'] == 'not distinguishable from chance'
  assert v['ci95'][0] < 0.5 < v['ci95'][1]


def test_same_seed_same_result_other_seed_differs():
  x, y, fold = make(shift=0.5, seed=2)
  a = evaluate.evaluate_features(cfg(), x, y, fold, 2)
  b = evaluate.evaluate_features(cfg(), x, y, fold, 2)
  c = evaluate.evaluate_features(cfg(seed=5), x, y, fold, 2)
  for k in ('cv_score', 'p_value', 'ci95', 'null_mean'):
    assert a[k] == b[k]
  assert (a['null_mean'], a['ci95']) != (c['null_mean'], c['ci95'])


def test_permutations_in_chunks_equal_one_chunk_and_p_formula():
  x, y, fold = make(shift=1.0, seed=3)
  h = crossval.CVHead(steps=50)
  folds = fold[None]
  key = jax.random.key(0)
  a = crossval.permutation_scores(h, x, y, folds, key, 30, 30, 0)
  b = crossval.permutation_scores(h, x, y, folds, key, 30, 8, 0)  # 4 chunks, last padded
  np.testing.assert_allclose(a, b, atol=1e-6)
  assert crossval.p_value(0.7, np.array([0.5, 0.7, 0.9])) == pytest.approx(3 / 4)
  # Out-of-fold scores of the first permutation (within folds) equal a direct CV on those labels.
  perm = crossval.label_permutations(folds, 1, 0)[0]
  direct, _ = crossval.observed(h, x, y[perm], folds, key)
  assert a[0] == pytest.approx(direct, abs=1e-6)


def test_image_statistics_warning_and_files(tmp_path):
  # Photos whose brightness carries the label: histograms alone find it -> WARNING.
  rng = np.random.default_rng(4)
  n = 60
  y = (np.arange(n) % 2).astype(np.int32)
  images = np.clip(rng.normal(100 + 60 * y[:, None, None, None], 20, (n, 8, 8, 3)), 0,
                   255).astype(np.uint8)
  x = images.reshape(n, -1)[:, :12].astype(np.float32)  # the "CNN" sees the same pixels
  v = evaluate.evaluate_features(cfg(), x, y, labels.stratified_folds(y, 5, 0), 2,
                                 images=images, grade=3.0 + y + rng.normal(0, 0.3, n))
  assert 'warning' in v and v['baselines']['image_statistics']['cv_score'] > 0.9
  assert v['grade_regression']['spearman'] > 0.5
  assert v['grade_regression']['mae'] < v['grade_regression']['mae_predicting_mean']
  evaluate.write_verdict(tmp_path, v)
  back = json.loads((tmp_path / 'eval' / 'verdict.json').read_text())
  assert back['p_value'] == v['p_value']
  text = (tmp_path / 'eval' / 'verdict.txt').read_text()
  assert text.startswith('Verdict: PHOTOS PREDICT GRADES THROUGH PHOTO CONDITIONS')
  assert 'WARNING' in text and v['predictable'] and 'colour/brightness statistics' in text
  assert f'p = {v["p_value"]:.4f}' in text


def test_no_warning_when_image_statistics_know_nothing(tmp_path):
  # The features carry the label, the photos do not (label-independent noise): predictable,
  # and the image-statistics baseline stays at chance, so no confound warning anywhere.
  rng = np.random.default_rng(5)
  x, y, fold = make(shift=3.0)
  images = rng.integers(0, 256, (len(y), 8, 8, 3), dtype=np.uint8)
  v = evaluate.evaluate_features(cfg(), x, y, fold, 2, images=images)
  assert v['verdict'] == 'predictable'
  stat = v['baselines']['image_statistics']
  assert stat['ci95'][0] < 0.5 < stat['ci95'][1]
  assert 'warning' not in v
  evaluate.write_verdict(tmp_path, v)
  text = (tmp_path / 'eval' / 'verdict.txt').read_text()
  assert 'WARNING' not in text and 'colour/brightness statistics' in text
  assert 'warning' not in json.loads((tmp_path / 'eval' / 'verdict.json').read_text())


@pytest.mark.parametrize('case', ['null_world', 'weak_photo_cue'])
def test_no_warning_unless_image_statistics_beat_chance_and_match_the_cnn(case):
  # The alarm needs both halves of its condition; each case makes exactly one of them true.
  # null_world: features and photos are noise. The image statistics overlap the (chance) CNN's
  #   CI but are not above chance -> no warning.
  # weak_photo_cue: brightness carries a weak label cue (above chance), the features a strong
  #   one; the image statistics are far below the CNN's CI -> no warning.
  rng = np.random.default_rng(7)
  if case == 'null_world':
    x, y, fold = make(shift=0.0, seed=1)
    images = rng.integers(0, 256, (len(y), 8, 8, 3), dtype=np.uint8)
  else:
    x, y, fold = make(shift=3.0)
    bright = 120 + 15 * y + rng.normal(0, 12, len(y))
    images = np.clip(rng.normal(bright[:, None, None, None], 20, (len(y), 8, 8, 3)), 0,
                     255).astype(np.uint8)
  v = evaluate.evaluate_features(cfg(), x, y, fold, 2, images=images)
  stat = v['baselines']['image_statistics']
  if case == 'null_world':
    assert stat['ci95'][0] < 0.5 and stat['cv_score'] >= v['ci95'][0]
  else:
    assert stat['ci95'][0] > 0.5 and stat['ci95'][1] < v['ci95'][0]
  assert 'warning' not in v and 'WARNING' not in evaluate.verdict_text(v)


def _demo_run(root, cue_strength):
  from gradejax.data import demo_data, prepare
  from gradejax.train import train_and_evaluate
  demo_data.write_demo_workbook(root / 'wb.xlsx', n=160, seed=0, cue_strength=cue_strength)
  prepare.prepare(root / 'wb.xlsx', root / 'data', prepare.Options(pivot='median'))
  from gradejax import preregister
  c = toy.get_config()
  c.data_dir = str(root / 'data')
  c.ledger = str(root / 'ledger.jsonl')
  c.harmonise = cue_strength > 0  # the re-test's 5 ResNet passes only where it can speak
  if cue_strength > 0:
    preregister.preregister(c)
  train_and_evaluate(c, str(root / 'run'))
  return root / 'run'


@pytest.fixture(scope='module')
def demo_runs(tmp_path_factory):
  """The toy config end to end on the demo generator (160 rows): planted cue and null world."""
  return {s: _demo_run(tmp_path_factory.mktemp(f'demo_s{s}'), s) for s in (1.0, 0.0)}


def test_demo_planted_cue_is_found(demo_runs):
  v = json.loads((demo_runs[1.0] / 'eval' / 'verdict.json').read_text())
  assert v['verdict'] == 'predictable'
  assert v['p_value'] < 0.01 and v['repeat0']['roc_auc'] >= 0.8 and v['cv_score'] >= 0.8
  # A sticker on the cheek is a face-local cue: no photo-condition baseline explains it. The
  # sticker nudges dlib's landmarks, so facial geometry is weakly predictive (ROC-AUC 0.63, CI
  # above chance, Holm p 0.0498 with 200 within-fold permutations, 0.0995 with free ones): it
  # may beat chance, but the CNN must add to it.
  assert v['answer'] == 'faces predict grades' and set(v['explained_by']) <= {'head_pose'}
  assert set(v['baselines']) == {'majority_class', 'image_statistics', 'blurred_photo',
                                 'image_quality', 'background', 'head_pose', 'face_geometry'}
  # The sticker stays: on photos with every acquisition condition equalised the CNN's
  # features still beat chance, and no harmonisation alone removes the signal.
  hm = v['harmonised']
  assert hm['survives'] and hm['removed_by'] == [] and hm['all']['ci95'][0] > 0.6
  assert v['facial_aspect']['aspect'] == 'detail beyond coarse appearance and geometry'
  assert v['ledger']['analyses'] == 1
  # Labels decided once: the verdict names prepare's labelling and its class counts.
  summary = json.loads((demo_runs[1.0].parent / 'data' / 'summary.json').read_text())
  assert v['labels'].startswith('pivot=median (') and v['class_counts'] == list(
      summary['class_counts'].values())
  assert v['preregistration']['status'] == 'pre-registered'
  assert 'no deviation' in (demo_runs[1.0] / 'eval' / 'verdict.txt').read_text()


def test_demo_null_world_is_not_predictable_via_cli(demo_runs):
  import subprocess
  import sys
  workdir = demo_runs[0.0]
  (workdir / 'eval' / 'verdict.json').unlink()
  r = subprocess.run([sys.executable, '-m', 'gradejax.evaluate', '--workdir', str(workdir)],
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  assert 'Verdict: NOT DISTINGUISHABLE FROM CHANCE' in r.stdout
  v = json.loads((workdir / 'eval' / 'verdict.json').read_text())
  assert v['p_value'] > 0.05 and not v['predictable']
  assert v['answer'] == 'not distinguishable from chance'
  assert f'is {v["power"]["min_detectable_auc"]:.3f})' in r.stdout
  # The CLI re-ran the same analysis: the ledger has two lines but counts one analysis.
  assert v['ledger']['analyses'] == 1 and v['ledger']['p_holm'] == v['p_value']
  assert len((workdir.parent / 'ledger.jsonl').read_text().splitlines()) == 2


def test_verdict_needs_the_bootstrap_ci_above_chance():
  # alpha = 1 makes the permutation half of the rule true for any p < 1, so the verdict rests on
  # the bootstrap CI alone: on noise features it straddles chance -> not predictable.
  x, y, fold = make(shift=0.0, seed=1)
  v = evaluate.evaluate_features(cfg(alpha=1.0, num_permutations=20), x, y, fold, 2)
  assert v['p_value'] < 1.0 and v['ci95'][0] < v['chance']
  assert not v['predictable']


def test_cv_repeats_draw_fresh_folds_seeded_by_seed_plus_repeat():
  y = (np.arange(60) % 3 == 0).astype(np.int32)
  dataset_fold = labels.stratified_folds(y, 5, 9)
  folds = crossval.cv_folds(y, dataset_fold, 5, 3, seed=4)
  np.testing.assert_array_equal(folds[0], dataset_fold)  # repeat 0: the dataset's own folds
  for r in (1, 2):
    np.testing.assert_array_equal(folds[r], labels.stratified_folds(y, 5, 4 + r))
  assert not np.array_equal(folds[1], folds[2])  # the repeats are different partitions


def test_cv_head_balances_the_classes():
  # Constant features leave the head only its bias, whose optimum predicts the (weighted) class
  # share: 1/2 for every row with class balancing, the plain share 1/5 without.
  y = (np.arange(50) % 5 == 0).astype(np.int32)
  x = np.zeros((50, 3), np.float32)
  train = np.ones(50, bool)
  for balanced, share in ((True, 0.5), (False, 0.2)):
    h = crossval.CVHead(balanced=balanced, steps=300)
    probs = np.asarray(crossval.fit_predict(h, x, y, train, jax.random.key(0)))
    np.testing.assert_allclose(probs[:, 1], share, atol=0.01)
