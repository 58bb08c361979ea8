"""The TFDS dataset: built by prepare, read back in a fresh process without TensorFlow."""
import json
import subprocess
import sys

import numpy as np
import pytest
import skimage.data

from fixtures import xlsx_builders as xb
from gradejax.data import images, manifest, prepare
from helpers import child_env

READER = r'''
import json, sys
import numpy as np
import tensorflow_datasets as tfds
from gradejax.data import dataset
out = sys.argv[1]
arrays = dataset.load_arrays(out)
source = tfds.data_source('grade_chips', data_dir=out + '/tfds', split='train')
direct = [source[i] for i in range(len(source))]
np.savez(sys.argv[2], **{k: v for k, v in arrays.items() if isinstance(v, np.ndarray)},
         direct_images=np.stack([d['image'] for d in direct]),
         direct_ids=np.array([d['id'].decode() for d in direct]))
print(json.dumps({'num_classes': arrays['num_classes'], 'class_names': arrays['class_names'],
                  'tensorflow_loaded': 'tensorflow' in sys.modules}))
'''


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  a = skimage.data.astronaut()
  crops = [a[30:286, 100:356], a[10:266, 80:336], a[40:296, 110:366], a[20:276, 90:346]]
  rows = [('z9', 4.5, xb.encode(crops[0], 'JPEG', quality=92)),
          ('a1', 3.0, xb.png_bytes(crops[1])),
          ('m5', 'bad', None),
          ('b2', 5.25, xb.png_bytes((crops[2] * 0.85).astype(np.uint8))),
          ('k7', 2.5, xb.encode(crops[3], 'JPEG', quality=92))]
  tmp = tmp_path_factory.mktemp('ds')
  path = xb.write_workbook(tmp / 'w.xlsx', rows)
  out = tmp / 'data'
  prepare.prepare(path, out, prepare.Options(folds=2, seed=1))
  return out


def test_read_back_in_fresh_process(prepared, tmp_path):
  env = child_env()
  npz = tmp_path / 'arrays.npz'
  run = subprocess.run([sys.executable, '-c', READER, str(prepared), str(npz)], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
  assert run.returncode == 0, run.stderr
  meta = json.loads(run.stdout.strip().splitlines()[-1])
  assert meta == {'num_classes': 2, 'class_names': ['below_4.0', 'at_or_above_4.0'],
                  'tensorflow_loaded': False}
  got = np.load(npz)
  used = [e for e in manifest.read(prepared / 'manifest.csv') if e.status == 'used']
  assert [e.id for e in used] == ['z9', 'a1', 'b2', 'k7']  # workbook order
  assert got['images'].dtype == np.uint8 and got['images'].shape == (4, 150, 150, 3)
  assert got['id'].tolist() == [e.id for e in used]
  assert got['label'].dtype == np.int32 and got['label'].tolist() == [e.label for e in used]
  assert got['label'].tolist() == [1, 0, 1, 0]
  assert got['grade'].dtype == np.float32
  np.testing.assert_array_equal(got['grade'], np.float32([4.5, 3.0, 5.25, 2.5]))
  assert got['fold'].dtype == np.int32 and got['fold'].tolist() == [e.fold for e in used]
  assert got['source_row'].tolist() == [2, 3, 5, 6]
  for i, e in enumerate(used):
    np.testing.assert_array_equal(got['images'][i], images.read_png(prepared / e.file))
  # tfds.data_source straight from the files gives the same records in the same order.
  assert got['direct_ids'].tolist() == got['id'].tolist()
  np.testing.assert_array_equal(got['direct_images'], got['images'])


def test_dataset_files_hold_no_absolute_paths(prepared):
  folder = prepared / 'tfds' / 'grade_chips' / '1.0.0'
  info = json.loads((folder / 'dataset_info.json').read_text())
  assert info['fileFormat'] == 'array_record' and info['disableShuffling'] is True
  assert int(info['splits'][0]['shardLengths'][0]) == 4
  for f in folder.iterdir():
    if f.suffix in ('.json', '.txt'):
      assert '.tmp-' not in f.read_text()
  assert not (prepared / 'tfds' / 'downloads').exists()


def test_build_leaves_no_temporary_folder(prepared, tmp_path, monkeypatch):
  # TFDS makes a tempfile.mkdtemp('tfds') folder per build and keeps it; build removes it.
  import shutil
  import tempfile
  from gradejax.data import dataset
  out = tmp_path / 'again'
  shutil.copytree(prepared / 'chips', out / 'chips')
  shutil.copy(prepared / 'manifest.csv', out / 'manifest.csv')
  temp = tmp_path / 'temp'
  temp.mkdir()
  monkeypatch.setattr(tempfile, 'tempdir', str(temp))  # this test's own temp dir
  dataset.build(out, ('below_4.0', 'at_or_above_4.0'))
  assert tempfile.tempdir == str(temp) and list(temp.iterdir()) == []
  assert dataset.load_arrays(out)['id'].tolist() == ['z9', 'a1', 'b2', 'k7']
