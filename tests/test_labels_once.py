"""Labels are decided once, by prepare (issue 23, docs/CONTRACTS.md): a config asking for other
labels stops with a one-line message naming both pivots; None or the same labels go through."""
import numpy as np
import pytest

from configs import toy
from gradejax.data import manifest
from gradejax.training import input_pipeline


@pytest.fixture(scope='module')
def prepared_at_4(tmp_path_factory):
  from fixtures import xlsx_builders as xb
  from gradejax.data import demo_data, prepare
  root = tmp_path_factory.mktemp('labels')
  grades = [3.5, 3.75, 4.0, 4.5, 4.75, 5.0, 5.25, 5.5]  # median 4.625: other labels than 4.0
  rows = [(f'p{r}', g, demo_data.encode_jpeg(demo_data.render_row(0, r, False)[0]))
          for r, g in enumerate(grades)]
  wb = xb.write_workbook(root / 'wb.xlsx', rows, headers=('id', 'grade', 'photo'))
  prepare.prepare(wb, root / 'data', prepare.Options(pivot=4.0, folds=2))
  return root / 'data'


def config(data_dir, pivot):
  c = toy.get_config()
  c.data_dir, c.pivot = str(data_dir), pivot
  return c


def test_median_config_on_data_prepared_at_4_stops_naming_both_pivots(prepared_at_4, tmp_path):
  from gradejax.train import train_and_evaluate
  with pytest.raises(ValueError) as e:
    train_and_evaluate(config(prepared_at_4, 'median'), str(tmp_path / 'run'))
  msg = str(e.value)
  assert '\n' not in msg and 'pivot=median' in msg and 'pivot=4.0' in msg
  assert 'threshold 4.625' in msg and '--pivot median' in msg
  assert not (tmp_path / 'run' / 'checkpoints').exists()  # stopped before training


def test_the_data_labels_are_used_everywhere_when_the_config_agrees(prepared_at_4):
  truth = {e.id: e.label for e in manifest.read(prepared_at_4 / 'manifest.csv')
           if e.status == 'used'}
  for pivot in (None, 4.0):
    data = input_pipeline.load_dataset(config(prepared_at_4, pivot))
    assert data['labelling'] == 'pivot=4.0'
    assert data['class_names'] == ['below_4.0', 'at_or_above_4.0']
    assert [truth[i] for i in data['id']] == data['label'].tolist()
    np.testing.assert_array_equal(data['label'], (data['grade'] >= 4.0).astype(np.int32))
