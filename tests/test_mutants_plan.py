"""The pre-registered plan's parts, by hand: the gaps mutation testing found in
gradejax/evaluation/plan.py (issue 22; benchmarks/mutation.py, RESULTS.md)."""
import hashlib
import json

import ml_collections
import numpy as np

from gradejax.evaluation import harmonise, ledger, plan


def _config(**kw):
  base = {'seed': 0, 'data_dir': '/w/data/set1', 'ledger': '', 'plan': '', 'metric': 'mcc',
          'alpha': 0.01, 'num_permutations': 10, 'cv_folds': 3, 'cv_repeats': 2}
  return ml_collections.ConfigDict(dict(base, **kw))


def test_battery_and_harmonisation_names():
  assert plan.battery_names(_config(), False) == ['image_statistics', 'blurred_photo']
  assert plan.battery_names(_config(), True) == [
      'image_statistics', 'blurred_photo', 'image_quality', 'background', 'head_pose',
      'face_geometry']
  assert plan.harmonisation_names(_config()) == list(harmonise.KINDS) + ['all']
  assert plan.harmonisation_names(_config(harmonisations=('jpeg',))) == ['jpeg', 'all']
  assert plan.harmonisation_names(_config(harmonise=False)) == []
  assert plan.harmonisation_names(_config(harmonise=True)) == list(harmonise.KINDS) + ['all']


def test_plan_of_reads_every_field_from_config_and_data():
  data = {'id': np.array(['a']), 'grade': np.array([4.0]),
          'images': np.zeros((1, 2, 2, 3), np.float32), 'labelling': 'pivot=4.0'}
  c = _config(min_gain=0.05, min_retained=0.7)
  p = plan.plan_of(c, data, False)
  assert p == {'config_hash': ledger.config_hash(c), 'dataset': ledger.dataset_key(data),
               'metric': 'mcc', 'alpha': 0.01, 'min_gain': 0.05, 'min_retained': 0.7,
               'num_permutations': 10,
               'cv_folds': 3, 'cv_repeats': 2,
               'battery': ['image_statistics', 'blurred_photo'],
               'harmonisations': list(harmonise.KINDS) + ['all'], 'labelling': 'pivot=4.0'}
  del data['labelling']
  assert plan.plan_of(_config(), data, True)['labelling'] == 'as prepared'
  assert plan.plan_of(_config(), data, True)['min_gain'] == 0.02
  assert plan.plan_of(_config(), data, True)['min_retained'] == harmonise.DEFAULT_MIN_RETAINED
  # Every field is hashed: a plan that differs only in min_retained has another hash and
  # compare() names the field.
  other = dict(p, min_retained=0.5)
  assert plan.plan_hash(other) != plan.plan_hash(p)


def test_default_path_and_a_plan_written_after_evaluations(tmp_path):
  c = _config(data_dir=str(tmp_path / 'ws' / 'data' / 'set1'))
  assert plan.default_path(c) == tmp_path / 'ws' / 'plan-set1.json'
  c.plan = str(tmp_path / 'mine.json')
  assert plan.default_path(c) == tmp_path / 'mine.json'
  p = {k: 1 for k in plan.FIELDS}
  out = plan.write(tmp_path / 'sub' / 'plan.json', p, evaluations_before=2)
  # The hash is of canonical JSON (sorted keys), so another program can check it.
  body = json.dumps({k: 1 for k in sorted(plan.FIELDS)}, sort_keys=True)
  assert out['hash'] == hashlib.sha256(body.encode()).hexdigest()
  plan.write(tmp_path / 'a' / 'b' / 'plan.json', p)  # missing folders are made
  assert out['evaluations_before'] == 2 and out['version'] == plan.VERSION
  assert json.loads((tmp_path / 'sub' / 'plan.json').read_text())['hash'] == plan.plan_hash(p)
  r = plan.compare(tmp_path / 'sub' / 'plan.json', p)
  assert r['status'] == 'deviations'
  assert r['deviations'] == ['the plan was written after 2 evaluation(s) of this dataset']
  assert '1 deviation(s)' in r['text'] and r['planned_config_hash'] == 1
  assert plan.compare(tmp_path / 'x.json', p)['hash'] is None


def test_preregister_writes_the_plan_of_the_prepared_data(train_data_dir, tmp_path):
  from run_fixtures import config_for
  from gradejax.training import input_pipeline
  c = config_for(train_data_dir, ledger=str(tmp_path / 'ledger.jsonl'), plan='')
  key = ledger.dataset_key(input_pipeline.load_dataset(c))
  ledger.record(c.ledger, {'dataset': key, 'config_hash': 'x', 'p_value': 0.5})
  for other in ('other', 'another'):
    ledger.record(c.ledger, {'dataset': other, 'config_hash': 'x', 'p_value': 0.5})
  path, p = plan.preregister(c)
  assert path == tmp_path / f'plan-{train_data_dir.name}.json' and path.is_file()
  assert p['dataset'] == key and p['evaluations_before'] == 1
  has = (train_data_dir / 'photo_conditions.csv').is_file()
  assert p['battery'] == plan.battery_names(c, has)
  path2, _ = plan.preregister(c, tmp_path / 'chosen.json')
  assert path2 == tmp_path / 'chosen.json' and path2.is_file()
