"""The whole preparation: every bad input ends as one manifest line with its reason."""
import collections
import csv
import io
import json
import pathlib
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import skimage.data
from PIL import Image

from fixtures import xlsx_builders as xb
from gradejax.data import faces, images, labels, manifest, prepare
from helpers import ROOT, child_env

FIXTURES = pathlib.Path(__file__).parent / 'fixtures'


def _jpeg(a, **kw):
  return xb.encode(a, 'JPEG', quality=92, **kw)


def _bomb() -> bytes:
  data = bytearray(xb.png_bytes(np.zeros((1, 1, 3), np.uint8)))
  struct.pack_into('>II', data, 16, 20000, 20000)
  struct.pack_into('>I', data, 29, zlib.crc32(bytes(data[12:29])))
  return bytes(data)


@pytest.fixture(scope='module')
def photos():
  a = skimage.data.astronaut()
  face = a[30:286, 100:356]  # 256x256, one face
  two = np.full((200, 440, 3), 200, np.uint8)
  two[:, :200] = a[30:230, 120:320]
  two[:, 240:] = (a[30:230, 120:320] * 0.7).astype(np.uint8)
  exif = Image.Exif()
  exif[0x0112] = 6
  rotated = xb.encode(Image.fromarray(np.rot90(face)), 'JPEG', quality=92, exif=exif)
  flat = np.full((200, 200, 3), 120, np.uint8)
  return {
      'face': _jpeg(face), 'face_png': xb.png_bytes(face), 'face_dark': _jpeg((face * 0.8).astype(np.uint8)),
      'face_shift': _jpeg(a[10:266, 80:336]), 'two': _jpeg(two), 'rotated': rotated,
      'truncated': _jpeg(face)[:2000], 'garbage': b'this is not an image',
      'tiny': xb.png_bytes(face[:30, :30]), 'bomb': _bomb(), 'flat': _jpeg(flat),
  }


# (id, grade, photo key or None, expected reason code or '' for used)
CASES = [
    ('s01', 4.5, 'face', ''),
    ('s02', '3,5', 'face_png', ''),
    ('s03', 'abc', 'face', 'grade_not_a_number'),
    ('s04', None, 'face', 'missing_grade'),
    ('s05', 6.5, 'face', 'grade_out_of_range'),
    ('s01', 5.0, 'face', 'duplicate_id'),
    (None, 4.0, 'face', 'missing_id'),
    ('s08', 4.0, None, 'no_photo'),
    ('s09', 4.0, 'truncated', 'image_corrupt'),
    ('s10', 4.0, 'garbage', 'image_unsupported'),
    ('s11', 4.0, 'tiny', 'image_too_small'),
    ('s12', 4.0, 'bomb', 'image_too_large'),
    ('s13', 4.0, 'flat', 'no_face'),
    ('s14', 5.5, 'two', ''),
    ('s15', 3.0, 'rotated', ''),
    ('s16', 4.0, 'face_dark', ''),
    ('s17', '2,75', 'face_shift', ''),
    ('s18', 5, 'face_shift', ''),
]


@pytest.fixture(scope='module')
def workbook_path(tmp_path_factory, photos):
  rows = [(i, g, None if p is None else photos[p]) for i, g, p, _ in CASES]
  return xb.write_workbook(tmp_path_factory.mktemp('wb') / 'school.xlsx', rows)


@pytest.fixture(scope='module')
def prepared(tmp_path_factory, workbook_path):
  out = tmp_path_factory.mktemp('prep') / 'data'
  summary = prepare.prepare(workbook_path, out, prepare.Options(folds=2, seed=3))
  return out, summary


def test_rows_in_equal_rows_out_with_reasons(prepared):
  out, summary = prepared
  entries = manifest.read(out / 'manifest.csv')
  assert [e.source_row for e in entries] == list(range(2, 2 + len(CASES)))
  for e, (sid, _, _, code) in zip(entries, CASES):
    assert e.reason_code == code, (sid, e.reason)
    assert e.status == ('used' if not code else 'skipped')
  assert summary['rows_read'] == len(CASES)
  assert summary['used'] + summary['skipped'] == len(CASES)
  expected = collections.Counter(c for *_, c in CASES if c)
  assert summary['skipped_by_reason'] == dict(expected)
  assert json.loads((out / 'summary.json').read_text())['skipped_by_reason'] == dict(expected)


def test_labels_folds_and_files(prepared):
  out, summary = prepared
  used = [e for e in manifest.read(out / 'manifest.csv') if e.status == 'used']
  grades = {'s01': 4.5, 's02': 3.5, 's14': 5.5, 's15': 3.0, 's16': 4.0, 's17': 2.75, 's18': 5.0}
  assert {e.id: e.grade for e in used} == grades
  for e in used:
    assert e.label == int(grades[e.id] >= 4.0)  # 4.0 itself is at_or_above
    assert e.class_name == ('at_or_above_4.0' if e.label else 'below_4.0')
    assert e.file == f'chips/{e.class_name}/{e.id}.png' and (out / e.file).is_file()
    assert e.fold in (0, 1) and e.chip_affine.shape == (2, 3)
  assert summary['class_counts'] == {'below_4.0': 3, 'at_or_above_4.0': 4}
  assert summary['faces_found'] == 7 and summary['centre_crops'] == 0
  assert sorted(p.name for p in (out / 'chips').iterdir()) == ['at_or_above_4.0', 'below_4.0']
  assert len(list((out / 'chips').rglob('*.png'))) == 7
  # Stratified: each class is split as evenly as possible over the 2 folds.
  for k in (0, 1):
    per_fold = [sum(1 for e in used if e.label == k and e.fold == f) for f in (0, 1)]
    assert abs(per_fold[0] - per_fold[1]) <= 1


def test_chip_matches_dlib_on_the_decoded_photo(prepared, photos):
  out, _ = prepared
  entries = {e.id: e for e in manifest.read(out / 'manifest.csv') if e.status == 'used'}
  models = faces.load_models('hog')
  for sid, key in [('s02', 'face_png'), ('s15', 'rotated'), ('s14', 'two')]:
    image, _ = images.decode_photo(photos[key])
    ref, _ = faces.find_face(models, image)
    np.testing.assert_array_equal(images.read_png(out / entries[sid].file), ref.chip)
    np.testing.assert_allclose(entries[sid].chip_affine, ref.affine, rtol=1e-6, atol=1e-5)
    assert entries[sid].face_box == ref.box
  # The EXIF-rotated photo is only found because the orientation was applied.
  stored = np.asarray(Image.open(io.BytesIO(photos['rotated'])).convert('RGB'))
  assert not faces.detect(models, stored, 1) or faces.detect(models, stored, 1)[0].score < 0.5
  # Of the two faces, the brighter copy on the left scores higher and is the one kept.
  assert entries['s14'].face_box[2] < 220


def test_policies_overwrite_and_refusal(tmp_path, workbook_path):
  out = tmp_path / 'data'
  first = prepare.prepare(workbook_path, out, prepare.Options(folds=2))
  before = (out / 'manifest.csv').read_text()
  with pytest.raises(prepare.OutputExistsError, match='--overwrite'):
    prepare.prepare(workbook_path, out, prepare.Options(folds=2, no_face='centre'))
  assert (out / 'manifest.csv').read_text() == before
  second = prepare.prepare(workbook_path, out, prepare.Options(
      folds=2, no_face='centre', multi_face='skip', overwrite=True))
  entries = {e.id: e for e in manifest.read(out / 'manifest.csv')}
  assert entries['s13'].status == 'used' and entries['s13'].centre_crop
  assert entries['s13'].face_box is None
  assert entries['s14'].reason_code == 'several_faces'
  assert second['centre_crops'] == 1 and second['used'] == first['used']
  assert second['faces_found'] == second['used'] - 1  # the centre crop is not a face found
  # Only the new run's chips are there, and no temporary folder is left behind.
  assert not (out / 'chips' / 'at_or_above_4.0' / 's14.png').exists()
  assert (out / 'chips' / 'at_or_above_4.0' / 's13.png').exists()
  assert sorted(p.name for p in tmp_path.iterdir()) == ['data']


def test_duplicates_all_policy(tmp_path, workbook_path):
  summary = prepare.prepare(workbook_path, tmp_path / 'd', prepare.Options(folds=2, duplicates='all'))
  entries = manifest.read(tmp_path / 'd' / 'manifest.csv')
  assert [e.reason_code for e in entries if e.id == 's01'] == ['duplicate_id', 'duplicate_id']
  assert summary['skipped_by_reason']['duplicate_id'] == 2


def test_median_pivot_and_bins(tmp_path, workbook_path):
  s = prepare.prepare(workbook_path, tmp_path / 'm', prepare.Options(folds=2, pivot='median'))
  # Used grades 2.75 3 3.5 4 4.5 5 5.5: median 4.0, which goes up.
  assert s['class_counts'] == {'below_4.0': 3, 'at_or_above_4.0': 4}
  s = prepare.prepare(workbook_path, tmp_path / 'b', prepare.Options(folds=2, bins=3))
  assert s['labelling'] == 'bins=3' and sum(s['class_counts'].values()) == 7
  # Thresholds at the 1/3 and 2/3 quantiles (linear): 3.5 and 4.5, ties going up.
  assert s['thresholds'] == [3.5, 4.5] and list(s['class_counts'].values()) == [2, 2, 3]


def test_libreoffice_workbook_end_to_end(tmp_path):
  s = prepare.prepare(FIXTURES / 'libreoffice_grades.xlsx', tmp_path / 'lo',
                      prepare.Options(folds=2, min_side=64))
  entries = manifest.read(tmp_path / 'lo' / 'manifest.csv')
  assert [(e.id, e.status, e.reason_code) for e in entries] == [
      ('S01', 'used', ''), ('S02', 'used', ''), ('S03', 'skipped', 'no_photo'),
      ('S04', 'skipped', 'missing_grade'), ('S05', 'skipped', 'grade_out_of_range')]
  assert [e.grade for e in entries[:2]] == [4.5, 4.5] and s['faces_found'] == 2


# --- labels -------------------------------------------------------------------------------


def test_pivot_classes_and_names():
  lab = labels.make_labelling(np.array([3.0, 5.0]), pivot=4.0)
  assert lab.class_names == ('below_4.0', 'at_or_above_4.0')
  np.testing.assert_array_equal(labels.assign([3.99, 4.0, 4.01, 1.0, 6.0], lab), [0, 1, 1, 0, 1])
  med = labels.make_labelling(np.array([3.0, 4.5, 4.5, 4.5, 6.0]), pivot='median')
  assert med.thresholds == (4.5,) and med.class_names == ('below_4.5', 'at_or_above_4.5')
  np.testing.assert_array_equal(labels.assign([3.0, 4.5, 4.5, 4.5, 6.0], med), [0, 1, 1, 1, 1])
  with pytest.raises(ValueError, match='pivot'):
    labels.make_labelling(np.array([4.0]), pivot='high')


def test_quantile_bins():
  g = np.arange(1.0, 7.0, 0.5)  # 12 grades
  lab = labels.make_labelling(g, bins=3)
  np.testing.assert_allclose(lab.thresholds, np.quantile(g, [1 / 3, 2 / 3]))
  y = labels.assign(g, lab)
  assert np.bincount(y).tolist() == [4, 4, 4]
  assert lab.class_names[0].startswith('q0_below_') and lab.class_names[2].startswith('q2_at_or_above_')
  with pytest.raises(ValueError, match='collapse'):
    labels.make_labelling(np.array([4.0] * 8 + [5.0]), bins=3)


def test_stratified_folds_are_balanced_and_seeded():
  y = np.array([0] * 13 + [1] * 7)
  f = labels.stratified_folds(y, 5, seed=0)
  for c in (0, 1):
    counts = np.bincount(f[y == c], minlength=5)
    assert counts.max() - counts.min() <= 1
  sizes = np.bincount(f, minlength=5)
  assert sizes.max() - sizes.min() <= 1
  np.testing.assert_array_equal(f, labels.stratified_folds(y, 5, seed=0))
  assert not np.array_equal(f, labels.stratified_folds(y, 5, seed=1))


# --- CLI ----------------------------------------------------------------------------------


def _cli(*args):
  env = child_env()
  return subprocess.run([sys.executable, '-m', 'gradejax.prepare', *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=120)


def test_cli_success_then_refusal_then_bad_file(tmp_path, photos):
  path = xb.write_workbook(tmp_path / 'small.xlsx', [('a', 4.5, photos['face']),
                                                    ('b', 3.5, photos['face_dark']),
                                                    ('c', 'x', None)])
  out = tmp_path / 'out'
  run = _cli('--workbook', str(path), '--out', str(out), '--folds', '2')
  assert run.returncode == 0, run.stderr
  assert 'rows read' in run.stdout and 'grade_not_a_number' in run.stdout
  assert 'photos' in run.stderr  # progress
  rows = list(csv.DictReader(open(out / 'manifest.csv')))
  assert [r['status'] for r in rows] == ['used', 'used', 'skipped']
  again = _cli('--workbook', str(path), '--out', str(out), '--folds', '2')
  assert again.returncode != 0 and 'already exists' in again.stderr and '--overwrite' in again.stderr
  bad = tmp_path / 'notes.xlsx'
  bad.write_text('id;grade\n')
  run = _cli('--workbook', str(bad), '--out', str(tmp_path / 'o2'))
  assert run.returncode != 0 and 'notes.xlsx' in run.stderr and 'not an Excel' in run.stderr
  assert not (tmp_path / 'o2').exists()


def test_no_usable_rows_still_explains_every_row(tmp_path):
  path = xb.write_workbook(tmp_path / 'w.xlsx', [('a', 4.5, None), ('b', 'x', None)])
  s = prepare.prepare(path, tmp_path / 'out', prepare.Options(pivot='median'))
  assert s['used'] == 0 and s['skipped_by_reason'] == {'no_photo': 1, 'grade_not_a_number': 1}
  assert len(manifest.read(tmp_path / 'out' / 'manifest.csv')) == 2
  assert not (tmp_path / 'out' / 'tfds').exists()
  run = _cli('--workbook', str(path), '--out', str(tmp_path / 'out2'))
  assert run.returncode != 0 and 'no usable rows' in run.stderr


def test_ids_become_safe_unique_file_names(tmp_path, photos):
  from gradejax.data import workbook
  path = xb.write_workbook(tmp_path / 'w.xlsx', [('a/b', 4, photos['face']), ('a_b', 5, photos['face']),
                                                 (17, 4, photos['face']), ('.x', 4, photos['face'])])
  entries = prepare._ids_and_grades(workbook.read_workbook(path), prepare.Options())
  assert [(e.id, e.status, e.reason_code) for e in entries] == [
      ('a/b', 'used', ''), ('a_b', 'skipped', 'duplicate_id'), ('17', 'used', ''), ('.x', 'used', '')]
  assert [prepare.file_stem(e.id) for e in entries] == ['a_b', 'a_b', '17', '_.x']
