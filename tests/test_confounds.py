"""Photo-condition baselines, the three-way answer, power, groups and the ledger (issue 11).

Worlds are generated at the evaluation layer (feature matrices and small image sets with a
known answer); one small prepare run checks the side table written from real photo bytes.
"""
import io
import json

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import toy
from gradejax.data import labels, photo_quality
from gradejax import stats
from gradejax.evaluation import confounds, crossval, evaluate, ledger, power

N = 120


def cfg(**kw):
  c = toy.get_config()
  c.num_permutations, c.bootstrap, c.cv_head.steps = 100, 200, 60
  for k, v in kw.items():
    c[k] = v
  return c


def world(seed=0):
  rng = np.random.default_rng(seed)
  y = (np.arange(N) % 2).astype(np.int32)
  return rng, y, labels.stratified_folds(y, 5, seed)


def smooth_images(rng, n, size=32):
  """Label-free smooth colour fields (JPEG-friendly), uint8 [n, size, size, 3]."""
  base = rng.uniform(40, 215, (n, 4, 4, 3))
  return np.stack([np.asarray(Image.fromarray(b.astype(np.uint8)).resize((size, size),
                                                                          Image.BILINEAR))
                   for b in base])


# -- photo_quality against references ------------------------------------------------------------

def test_jpeg_quality_is_recovered_from_quantisation_tables_and_png_is_lossless():
  img = smooth_images(np.random.default_rng(0), 1, 64)[0]
  for q in (25, 50, 75, 95):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format='JPEG', quality=q)
    f = photo_quality.quality_features(buf.getvalue(), img)
    assert f['jpeg_quality'] == pytest.approx(q, abs=0.6) and f['format_jpeg'] == 1.0
  buf = io.BytesIO()
  Image.fromarray(img).save(buf, format='PNG')
  f = photo_quality.quality_features(buf.getvalue(), img, (10, 10, 30, 40))
  assert (f['format_png'], f['jpeg_quality'], f['bytes_per_pixel']) == (
      1.0, 100.0, len(buf.getvalue()) / 64 ** 2)
  assert f['face_size'] == pytest.approx(20 / 64) and f['face_y'] == pytest.approx(25 / 64)


def test_noise_estimate_and_head_pose_recover_known_values():
  rng = np.random.default_rng(1)
  flat = 0.5 + rng.normal(0, 0.03, (200, 200))
  assert photo_quality.noise_sigma(flat) == pytest.approx(0.03, rel=0.05)
  # Landmarks projected from the generic 3-D face turned by known angles (y down in photos).
  yaw, pitch, roll = np.radians([12.0, -7.0, 5.0])
  rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
  ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
  rz = np.array([[np.cos(roll), -np.sin(roll), 0], [np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
  pts = (rx @ ry @ rz @ photo_quality._MODEL_3D.T).T[:, :2] * 2.0  # x-y-z order
  lm = np.zeros((68, 2))
  lm[list(photo_quality._POSE_POINTS)] = pts * np.array([1.0, -1.0]) + 300
  np.testing.assert_allclose(photo_quality.head_pose(lm), [12.0, -7.0, 5.0], atol=0.5)


# -- the engine ----------------------------------------------------------------------------------

def test_ridge_head_matches_numpy_closed_form_and_padding_changes_nothing():
  rng, y, fold = world(2)
  x = rng.normal(size=(N, 5)).astype(np.float32)
  x[:, 0] += y
  score, oof = crossval.ridge_observed('roc_auc', x, y, fold[None], 2, 0.1)
  ref = np.zeros(N)
  for f in range(5):
    tr, te = fold != f, fold == f
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
    z = (x - mu) / sd
    t = y[tr] - y[tr].mean()
    beta = np.linalg.solve(z[tr].T @ z[tr] + 0.1 * tr.sum() * np.eye(5), z[tr].T @ t)
    ref[te] = z[te] @ beta
  np.testing.assert_allclose(oof[0, :, 1], ref, atol=1e-4)
  auc = float(stats.roc_auc(jnp.asarray(y), jnp.asarray(ref.astype(np.float32))))
  assert score == pytest.approx(auc, abs=1e-6)
  padded = np.concatenate([x, np.zeros((N, 11), np.float32)], 1)
  assert crossval.ridge_observed('roc_auc', padded, y, fold[None], 2, 0.1)[0] == pytest.approx(
      score, abs=1e-6)
  ties = jnp.asarray(np.round(ref * 2).astype(np.float32))  # many ties across classes
  assert float(crossval.rank_auc(jnp.asarray(y) == 1, ties)) == pytest.approx(
      float(stats.binary_roc_auc(jnp.asarray(y) == 1, ties)), abs=1e-7)


def test_groups_stay_in_one_fold_and_permutations_stay_within_groups():
  rng, y, _ = world(3)
  groups = np.array([f'g{i}' for i in rng.integers(0, 9, N)])
  folds = crossval.group_folds(y, groups, 5, 2, 0)
  for r in range(2):
    for g in np.unique(groups):
      assert len(np.unique(folds[r, groups == g])) == 1
  perms = crossval.permutations(N, 20, 0, groups)
  assert all((groups[p] == groups).all() and sorted(p) == list(range(N)) for p in perms)
  free = crossval.permutations(N, 3, 0)
  rng0 = np.random.default_rng(0)
  np.testing.assert_array_equal(free, [rng0.permutation(N) for _ in range(3)])


def test_null_labellings_keep_fold_counts_so_every_null_score_is_an_observed_score():
  # Folds stratified by the true labels and held fixed: a shuffle p that maps every fold (of
  # every repeat) onto itself is the same as shuffling the photos, T(y[p], x, F) ==
  # T(y, x[argsort(p)], F), so each null score is the observed score of an equally likely world
  # (exact p-value). A free shuffle changes the folds' class counts and breaks the identity.
  import jax
  n = 20
  y = (np.arange(n) % 4 == 0).astype(np.int32)  # 5 positives
  folds = np.stack([labels.stratified_folds(y, 2, s) for s in (0, 1)])  # 2 folds x 2 repeats
  x = np.random.default_rng(8).normal(size=(n, 3)).astype(np.float32)
  perms = crossval.label_permutations(folds, 5, 0)
  table = lambda lab, f: np.bincount(2 * f + lab, minlength=4).tolist()
  for p in perms:
    assert sorted(p) == list(range(n)) and not (p == np.arange(n)).all()
    assert all(table(y[p], f) == table(y, f) for f in folds)  # [8, 2, 7, 3] in both repeats
  null = crossval.ridge_permutation_scores('roc_auc', x, y, folds, 2, 0.1, perms, 5)
  world = [crossval.ridge_observed('roc_auc', x[np.argsort(p)], y, folds, 2, 0.1)[0]
           for p in perms]
  np.testing.assert_allclose(null, world, atol=1e-6)
  h, key = crossval.CVHead(steps=20), jax.random.key(0)  # the CNN's engine, same draws
  null = crossval.permutation_scores(h, x, y, folds, key, 5, 5, 0)
  world = [crossval.observed(h, x[np.argsort(p)], y, folds, key)[0] for p in perms]
  np.testing.assert_allclose(null, world, atol=1e-5)
  free = crossval.permutations(n, 5, 0)  # the old scheme: some fold gets other class counts
  assert any(table(y[p], folds[0]) != table(y, folds[0]) for p in free)
  off = crossval.ridge_permutation_scores('roc_auc', x, y, folds, 2, 0.1, free, 5)
  world = [crossval.ridge_observed('roc_auc', x[np.argsort(p)], y, folds, 2, 0.1)[0]
           for p in free]
  assert np.max(np.abs(off - np.array(world))) > 0.01


def test_power_matches_simulation_of_the_same_test():
  # Binormal scores with true AUC = the minimum detectable AUC: the test (reject above the
  # normal-approximation threshold) must reject in about 80% of simulated studies.
  n1, n0, alpha = 40, 160, 0.05
  mda = power.min_detectable_auc(n1, n0, alpha, 0.8)
  assert 0.6 < mda < 0.75
  t = 0.5 + 1.6448536 * power.hanley_mcneil_se(0.5, n1, n0)
  rng = np.random.default_rng(0)
  d = np.sqrt(2) * __import__('scipy').stats.norm.ppf(mda)
  pos = rng.normal(d, 1, (4000, n1))
  neg = rng.normal(0, 1, (4000, n0))
  auc = (pos[:, :, None] > neg[:, None, :]).mean((1, 2))
  assert np.mean(auc > t) == pytest.approx(0.8, abs=0.03)
  assert power.min_detectable_auc(4 * n1, 4 * n0, alpha) < mda  # more data sees smaller effects


def test_ledger_counts_distinct_analyses_and_holm_adjusts(tmp_path):
  path = tmp_path / 'ledger.jsonl'
  assert ledger.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
  a = ledger.record(path, {'dataset': 'd1', 'config_hash': 'A', 'p_value': 0.01})
  assert (a['analyses'], a['p_holm']) == (1, 0.01)
  ledger.record(path, {'dataset': 'd2', 'config_hash': 'B', 'p_value': 0.5})  # other data
  ledger.record(path, {'dataset': 'd1', 'config_hash': 'B', 'p_value': 0.04})
  c = ledger.record(path, {'dataset': 'd1', 'config_hash': 'A', 'p_value': 0.02})  # re-run
  assert (c['analyses'], c['p_holm']) == (2, pytest.approx(0.04))
  assert len(path.read_text().splitlines()) == 4


# -- worlds: the three-way answer ----------------------------------------------------------------

def test_compression_world_is_photo_conditions_naming_compression(tmp_path):
  # One class saved at JPEG quality 25, the other at 95: the "CNN" sees the artefacts (its
  # features are the decoded chips' blockiness and sharpness plus noise dimensions), colour
  # statistics do not. The answer must be photo conditions, naming compression.
  rng, y, fold = world(4)
  raw = smooth_images(rng, N)
  data, chips = [], []
  for img, label in zip(raw, y):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format='JPEG', quality=25 if label else 95)
    data.append(buf.getvalue())
    chips.append(np.asarray(Image.open(io.BytesIO(data[-1])).convert('RGB')))
  chips = np.stack(chips)
  q = np.array([[photo_quality.quality_features(d, c)[k] for k in photo_quality.QUALITY_COLUMNS]
                for d, c in zip(data, chips)], np.float32)
  g = [photo_quality._gray(c) for c in chips]
  x = np.concatenate([np.array([[photo_quality.blockiness(a), photo_quality.sharpness(a)]
                                for a in g]), rng.normal(size=(N, 6))], 1).astype(np.float32)
  v = evaluate.evaluate_features(cfg(), x, y, fold, 2, images=chips,
                                 conditions={'image_quality': q})
  assert v['predictable'] and v['answer'] == confounds.CONDITIONS
  assert 'image_quality' in v['explained_by'] and v['baselines']['image_quality']['cv_score'] > 0.95
  assert v['incremental']['p_value'] > 0.05
  text = evaluate.verdict_text(v)
  assert text.startswith('Verdict: PHOTOS PREDICT GRADES THROUGH PHOTO CONDITIONS')
  assert 'image quality and compression' in text and 'WARNING' in text
  evaluate.write_verdict(tmp_path, v)
  back = json.loads((tmp_path / 'eval' / 'verdict.json').read_text())
  assert back['answer'] == confounds.CONDITIONS and 'oof' not in back['baselines']['image_quality']


@pytest.mark.parametrize('case', ['background', 'face_cue', 'both', 'null'])
def test_background_face_cue_and_null_worlds(case):
  # both: the background carries a weak cue and the faces a strong independent one; the CNN
  # adds to the baseline (incremental validity), so faces predict grades, and the text says the
  # photo conditions carry some signal too.
  rng, y, fold = world(5)
  images = rng.integers(0, 256, (N, 16, 16, 3), dtype=np.uint8)  # chips carry nothing
  x = rng.normal(size=(N, 16)).astype(np.float32)
  bg = rng.normal(size=(N, 12)).astype(np.float32)
  if case in ('background', 'both'):
    bg[:, :3] += (1.2 if case == 'background' else 0.8) * y[:, None]  # a tint behind the head
  if case in ('face_cue', 'both'):
    x[:, 0] += 3.0 * y
  v = evaluate.evaluate_features(cfg(), x, y, fold, 2, images=images,
                                 conditions={'background': bg})
  text = evaluate.verdict_text(v)
  named = [n for n in v['baselines'] if n != 'majority_class']
  assert [v['baselines'][n]['p_holm'] for n in named] == pytest.approx(
      ledger.holm([v['baselines'][n]['p_value'] for n in named]))  # Holm over the battery
  if case == 'background':
    assert not v['predictable'] and v['answer'] == confounds.CONDITIONS
    assert v['explained_by'] == ['background']
    assert 'cannot be told from these photos' not in text and 'background only' in text
  elif case == 'face_cue':
    assert v['answer'] == confounds.FACES and v['explained_by'] == [] and 'warning' not in v
  elif case == 'both':
    assert v['answer'] == confounds.FACES and v['explained_by'] == ['background']
    inc = v['incremental']
    assert inc['p_value'] < 0.05 and inc['with_cnn_score'] > inc['baselines_score'] + 0.1
    assert 'CNN adds to them' in text and 'background only' in text
  else:
    assert v['answer'] == confounds.CHANCE and v['explained_by'] == []
    _check_documented_permutations(v, x, bg, y, fold)
    mda = v['power']['min_detectable_auc']
    assert 0.55 < mda < 0.85 and f'{mda:.3f}' in text and 'cannot be told' in text


def _check_documented_permutations(v, x, bg, y, fold):
  # Issue 22: the CNN's null and every baseline's null come from label_permutations(seed + 1);
  # both recomputed on their own must match the verdict's.
  import jax
  c = cfg()
  folds = crossval.cv_folds(y, fold, c.cv_folds, c.cv_repeats, c.seed)
  perms = crossval.label_permutations(folds, c.num_permutations, c.seed + 1)
  z = np.zeros((N, 16), np.float32)
  z[:, :bg.shape[1]] = bg  # the battery's zero padding
  null = crossval.ridge_permutation_scores('roc_auc', z, y, folds, 2, c.baseline_ridge, perms,
                                           c.permutation_chunk)
  score = crossval.ridge_observed('roc_auc', z, y, folds, 2, c.baseline_ridge)[0]
  b = v['baselines']['background']
  assert 0.03 < b['p_value'] < 0.97  # a p the permutations decide
  assert b['p_value'] == crossval.p_value(score, null)
  assert b['null_q95'] == pytest.approx(float(np.percentile(null, 95)), abs=1e-6)
  h = crossval.from_config(c, 2)
  key = jax.random.fold_in(jax.random.key(c.seed), 2)
  cnn = crossval.permutation_scores(h, x, y, folds, key, c.num_permutations,
                                    c.permutation_chunk, c.seed + 1)
  np.testing.assert_allclose(v['arrays']['null'], cnn, atol=1e-6)


def test_group_confounded_world_warns():
  # Grades differ between photo sessions (session 0: 80% top class, session 2: 20%).
  rng, _, fold = world(6)
  groups = np.repeat(['s0', 's1', 's2', 's3', 's4', 's5'], N // 6)
  rate = {'s0': 0.8, 's1': 0.8, 's2': 0.2, 's3': 0.2, 's4': 0.5, 's5': 0.5}
  y = (rng.uniform(size=N) < np.array([rate[g] for g in groups])).astype(np.int32)
  x = rng.normal(size=(N, 8)).astype(np.float32)
  v = evaluate.evaluate_features(cfg(), x, y, fold, 2, groups=groups)
  assert v['groups']['p_value'] < 0.05 and 'group column alone predicts' in v['warning']
  assert v['answer'] == confounds.CHANCE
  y0 = (np.arange(N) % 2).astype(np.int32)  # balanced in every session: no warning
  v0 = evaluate.evaluate_features(cfg(), x, y0, fold, 2, groups=groups)
  assert v0['groups']['p_value'] > 0.5 and 'warning' not in v0


# -- prepare writes the side table from the original photo bytes --------------------------------

def test_prepare_writes_photo_conditions_with_quality_landmarks_and_groups(tmp_path):
  from fixtures import xlsx_builders as xb
  from gradejax.data import demo_data, faces, manifest, prepare
  rows, quality = [], {}
  for r in range(8):
    img, _, _ = demo_data.render_row(0, r, False)
    q = 25 if r % 2 else 90
    session = None if r == 7 else f'2026-{r % 3}'
    rows.append((f'p{r}', 4.0 + 0.25 * r, demo_data.encode_jpeg(img, q), session))
    quality[r + 2] = q
  wb = xb.write_workbook(tmp_path / 'wb.xlsx', rows, headers=('id', 'grade', 'photo', 'session'))
  out = tmp_path / 'data'
  prepare.prepare(wb, out, prepare.Options(pivot='median', folds=2, group_column='session'))
  entries = {e.source_row: e for e in manifest.read(out / 'manifest.csv')}
  assert entries[9].reason.startswith('missing_group')
  table = photo_quality.read_csv(out / 'photo_conditions.csv')
  used = [s for s, e in entries.items() if e.status == 'used']
  assert sorted(table) == sorted(used) and len(used) >= 6
  template = faces.template_points()  # where the 5-point alignment puts the nose base
  for s in used:
    row = table[s]
    assert row['jpeg_quality'] == pytest.approx(quality[s], abs=0.6)
    assert row['group'] == f'2026-{(s - 2) % 3}' and row['background'].shape == (52,)
    lm = row['landmarks68'].reshape(68, 2)
    assert np.linalg.norm(lm[33] - template[4]) < 10  # 68-point nose base, chip pixels
    assert abs(row['yaw']) < 20 and abs(row['roll']) < 15


def test_demo_photo_condition_worlds_plant_what_they_say(tmp_path):
  from gradejax.data import demo_data, faces, workbook
  # cue_kind='background': only the backdrop changes; the background features see it, the
  # chip's colour statistics barely do.
  plain, _, _ = demo_data.render_row(0, 0, True, cue_kind='jpeg')  # jpeg: pixels as no cue
  tinted, _, box = demo_data.render_row(0, 0, True, cue_kind='background')
  assert box is None
  face, _ = faces.find_face(faces.load_models(), plain)
  bg = [photo_quality.background_features(im, face.affine, 150) for im in (plain, tinted)]
  chip = [confounds.image_statistics(faces.align(faces.load_models(), im, face.box)[0][None])[0]
          for im in (plain, tinted)]
  tint = demo_data.BACKGROUND_TINT[0]
  shift_bg, shift_chip = bg[1][32:35] - bg[0][32:35], chip[1][32:35] - chip[0][32:35]
  assert np.abs(shift_bg).max() > 0.05 and np.abs(shift_bg).max() > 3 * np.abs(shift_chip).max()
  assert np.sign(shift_bg[2]) == np.sign(tint[2] - bg[0][34])  # towards the tint's blue
  # cue_kind='jpeg': the cue rows' photos in the workbook are saved at JPEG quality 25.
  truth = demo_data.write_demo_workbook(tmp_path / 'w.xlsx', n=6, cue_strength=1.0,
                                        photo_size=(64, 72), cue_kind='jpeg')
  assert 0 < truth.cue.sum() < 6
  table = workbook.read_workbook(tmp_path / 'w.xlsx')
  for row, cue in zip(table.rows, truth.cue):
    img = np.asarray(Image.open(io.BytesIO(row.photo.data)).convert('RGB'))
    q = photo_quality.quality_features(row.photo.data, img)['jpeg_quality']
    assert q == pytest.approx(demo_data.JPEG_LOW_QUALITY if cue else demo_data.JPEG_QUALITY,
                              abs=0.6)


# -- issue 22's surviving mutations -------------------------------------------------------------

def test_strata_split_cells_by_group_so_permutations_keep_groups_and_folds():
  folds = np.array([[0, 0, 0, 0, 1, 1, 1, 1], [0, 1, 0, 1, 0, 1, 0, 1]])
  groups = np.array(['a', 'a', 'b', 'b', 'a', 'a', 'b', 'b'])
  cells = crossval.strata(folds, groups)
  keys = list(zip(folds[0], folds[1], groups))
  assert len(np.unique(cells)) == len(set(keys)) == 8  # every (fold, fold, group) its own
  folds1 = folds[:1]
  cells1 = crossval.strata(folds1, groups)
  assert len(np.unique(cells1)) == 4
  assert all((cells1[i] == cells1[j]) == (keys[i][0::2] == keys[j][0::2])
             for i in range(8) for j in range(8))
  for p in crossval.label_permutations(folds1, 30, 0, groups):
    assert (groups[p] == groups).all() and (folds1[0][p] == folds1[0]).all()


def test_power_statement_uses_the_class_counts_it_reports():
  for counts, (n1, n0) in (([90, 30], (30, 90)), ([10, 20, 30], (10, 50))):
    pw = power.power_statement(counts, 0.05, None, 'roc_auc')
    assert pw['n_per_class'] == [n1, n0]
    assert pw['min_detectable_auc'] == power.min_detectable_auc(n1, n0, 0.05, 0.8)
  # The permutation null's quantile is the threshold only for ROC-AUC.
  assert power.power_statement([30, 90], 0.05, 0.6, 'roc_auc')['min_detectable_auc'] == \
      power.min_detectable_auc(30, 90, 0.05, 0.8, 0.6)


def test_beats_chance_uses_the_holm_p_and_decide_the_incremental_p():
  b = {'p_value': 0.01, 'p_holm': 0.06, 'ci95': [0.6, 0.8], 'cv_score': 0.7}
  assert not confounds.beats_chance(b, 0.5, 0.05)
  assert confounds.beats_chance(dict(b, p_holm=0.03), 0.5, 0.05)
  assert not confounds.beats_chance(dict(b, p_holm=0.03, ci95=[0.49, 0.8]), 0.5, 0.05)
  bat = {'background': dict(b, p_holm=0.01)}
  adds = {'p_value': 0.001, 'gain': 0.1, 'gain_ci95': [0.05, 0.15]}
  assert confounds.decide(True, bat, adds, 0.5, 0.05)[0] == confounds.FACES
  assert confounds.decide(True, bat, dict(adds, p_value=0.5), 0.5, 0.05)[0] == \
      confounds.CONDITIONS
