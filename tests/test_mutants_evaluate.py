"""The evaluation's plumbing: the planned analysis counted only for a deviating run, groups
only when there are two: the gaps mutation testing found in gradejax/evaluation/evaluate.py
(issue 22; benchmarks/mutation.py, RESULTS.md). (The facial aspect only for a faces answer is
checked by test_evaluate's demo worlds, too slow for the mutation run's selection.)"""
import csv
import shutil

import numpy as np

from configs import toy
from gradejax.evaluation import evaluate, ledger


def test_a_deviating_run_counts_the_planned_analysis_once(tmp_path):
  path = tmp_path / 'ledger.jsonl'
  entry = {'dataset': 'd', 'config_hash': 'B', 'p_value': 0.02}
  ledger.record(path, {'dataset': 'd', 'config_hash': 'A', 'p_value': 0.5})
  summary = ledger.record(path, entry)

  def counted(deviations, planned):
    v = {'preregistration': {'deviations': deviations, 'planned_config_hash': planned},
         'ledger': dict(summary)}
    evaluate._count_planned(v, entry, path)
    return v['ledger']

  assert counted([], 'P') == summary  # pre-registered: nothing more to count
  assert counted(['alpha: planned 0.05, used 0.1'], None) == summary  # no plan to count
  assert counted(['x'], 'A') == summary  # the planned analysis ran and is in the ledger
  more = counted(['x'], 'P')
  assert (more['analyses'], more['counts_planned_analysis']) == (3, True)
  assert more['p_holm'] == ledger.holm([0.5, 0.02, 1.0])[1]


def test_groups_need_two_distinct_non_empty_values(train_data_dir, tmp_path):
  root = tmp_path / 'data'
  root.mkdir()
  shutil.copy(train_data_dir / 'manifest.csv', root / 'manifest.csv')
  with open(train_data_dir / 'photo_conditions.csv', newline='') as f:
    rows = list(csv.DictReader(f))
  data = {'images': np.zeros((len(rows), 8, 8, 3), np.float32),
          'source_row': np.array([int(r['source_row']) for r in rows])}
  c = toy.get_config()
  c.data_dir = str(root)

  def groups(values):
    with open(root / 'photo_conditions.csv', 'w', newline='') as f:
      w = csv.DictWriter(f, fieldnames=list(rows[0]))
      w.writeheader()
      w.writerows([dict(r, group=g) for r, g in zip(rows, values)])
    return evaluate._photo_conditions(c, data)[1]

  n = len(rows)
  assert groups(['a'] * n) is None
  two = groups(['a', 'b'] * (n // 2) + ['a'] * (n % 2))
  assert two is not None and sorted(set(two.tolist())) == ['a', 'b']
  assert groups([''] * (n - 1) + ['a']) is None  # a row without a group: no groups
