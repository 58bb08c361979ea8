"""The ledger's keys, paths and summary, by hand: the gaps mutation testing found in
gradejax/evaluation/ledger.py (issue 22; benchmarks/mutation.py, RESULTS.md)."""
import json

import ml_collections
import numpy as np
import pytest

from gradejax.evaluation import ledger


def _data(ids=('a', 'b'), grades=(3.0, 5.0), pixel=0.0):
  images = np.zeros((2, 4, 4, 3), np.float32)
  images[0, 0, 0, 0] = pixel
  return {'id': np.array(ids), 'grade': np.array(grades), 'images': images}


def test_dataset_key_hashes_ids_grades_and_chips():
  key = ledger.dataset_key(_data())
  assert len(key) == 16 and int(key, 16) >= 0
  assert ledger.dataset_key(_data()) == key
  assert ledger.dataset_key(_data(ids=('a', 'c'))) != key
  assert ledger.dataset_key(_data(grades=(3.0, 4.0))) != key
  assert ledger.dataset_key(_data(pixel=1.0)) != key


def test_config_hash_ignores_bookkeeping_and_sees_analysis_settings():
  c = ml_collections.ConfigDict({'seed': 0, 'data_dir': '/a', 'ledger': '', 'metric': 'roc_auc'})
  h = ledger.config_hash(c)
  c2 = ml_collections.ConfigDict(c.to_dict())
  c2.data_dir, c2.ledger = '/elsewhere', '/x/ledger.jsonl'  # paths: the same analysis
  assert ledger.config_hash(c2) == h
  c2.seed = 1  # another analysis
  assert ledger.config_hash(c2) != h


def test_default_path_is_the_configured_one_or_two_folders_above_the_data(tmp_path):
  data_dir = tmp_path / 'workspace' / 'data' / 'set1'
  c = ml_collections.ConfigDict({'data_dir': str(data_dir), 'ledger': ''})
  assert ledger.default_path(c) == tmp_path / 'workspace' / 'ledger.jsonl'
  c.ledger = str(tmp_path / 'mine.jsonl')
  assert ledger.default_path(c) == tmp_path / 'mine.jsonl'


def test_read_skips_a_cut_line_and_a_missing_ledger_is_empty(tmp_path):
  path = tmp_path / 'ledger.jsonl'
  assert ledger.read(path) == []
  path.write_text(json.dumps({'p_value': 0.1}) + '\n{"p_val\n' + json.dumps({'p_value': 0.2}) + '\n')
  assert [e['p_value'] for e in ledger.read(path)] == [0.1, 0.2]


def test_record_counts_runs_per_config_and_only_this_dataset(tmp_path):
  path = tmp_path / 'new' / 'deeper' / 'ledger.jsonl'  # the folders are made
  a = ledger.record(path, {'dataset': 'd1', 'config_hash': 'A', 'p_value': 0.01})
  assert a['runs'] == 1 and a['message'].endswith('1 distinct analysis of this dataset; '
                                                   'this one (config hash A) is new.')
  # Another dataset's analysis with its own config hash and a small p: not counted here.
  ledger.record(path, {'dataset': 'd2', 'config_hash': 'C', 'p_value': 0.001})
  b = ledger.record(path, {'dataset': 'd1', 'config_hash': 'A', 'p_value': 0.03})
  assert (b['analyses'], b['runs'], b['p_holm']) == (1, 2, pytest.approx(0.03))
  assert 'was run 2 times and counts once.' in b['message']
  c = ledger.record(path, {'dataset': 'd1', 'config_hash': 'B', 'p_value': 0.02})
  assert (c['analyses'], c['runs'], c['p_holm']) == (2, 1, pytest.approx(0.04))
  assert '2 distinct analyses' in c['message']
  assert json.loads(path.read_text().splitlines()[-1])['config_hash'] == 'B'
