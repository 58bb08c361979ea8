"""The whole preparation: every bad input ends as one manifest line with its reason."""
import collections
import csv
import io
import json
import os
import pathlib
import re
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import scipy.stats
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
      'face_shift': _jpeg(a[10:266, 80:336]), 'face_shift2': _jpeg(a[14:270, 84:340]), 'two': _jpeg(two), 'rotated': rotated,
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
    ('s18', 5, 'face_shift2', ''),  # its own photo: the same picture twice is duplicate_photo
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
  # One JPEG embedded in three cells: the two rows that reach the photo check share it, so
  # both are skipped as duplicate_photo (issue 24), naming each other.
  assert [(e.id, e.status, e.reason_code) for e in entries] == [
      ('S01', 'skipped', 'duplicate_photo'), ('S02', 'skipped', 'duplicate_photo'),
      ('S03', 'skipped', 'no_photo'), ('S04', 'skipped', 'missing_grade'),
      ('S05', 'skipped', 'grade_out_of_range')]
  assert [e.grade for e in entries[:2]] == [4.5, 4.5] and s['used'] == 0
  assert 'as row 3;' in entries[0].reason and 'as row 2;' in entries[1].reason


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
  # Issue 24: ids whose file names would collide are both kept, under distinct names.
  assert [(e.id, e.status, e.reason_code) for e in entries] == [
      ('a/b', 'used', ''), ('a_b', 'used', ''), ('17', 'used', ''), ('.x', 'used', '')]
  names = prepare.file_names(e.id for e in entries)
  assert names['17'] == '17'
  assert re.fullmatch(r'a_b-[0-9a-f]{10}', names['a/b']) and re.fullmatch(r'a_b-[0-9a-f]{10}',
                                                                           names['a_b'])
  assert names['.x'].startswith('_.x-') and len(set(names.values())) == 4


# --- issue 14: LibreOffice round trip end to end, --check, output safety ---------------------

from fixtures.make_xlsxwriter_grades import photo_colour  # noqa: E402


def test_round_trip_end_to_end_every_chip_is_its_rows_photo(tmp_path):
  # Plain-colour photos have no face: centre crops keep each photo's colour in its chip.
  opts = prepare.Options(folds=2, no_face='centre', min_side=32, pivot='median')
  s = prepare.prepare(FIXTURES / 'xlsxwriter_libreoffice.xlsx', tmp_path / 'rt', opts)
  entries = manifest.read(tmp_path / 'rt' / 'manifest.csv')
  assert [e.source_row for e in entries] == list(range(2, 12))  # every row accounted for
  used = {e.id: e for e in entries if e.status == 'used'}
  assert sorted(used) == ['x01', 'x02', 'x03', 'x04', 'x05', 'x10']
  for sid, e in used.items():
    chip = images.read_png(tmp_path / 'rt' / e.file)
    np.testing.assert_array_equal(chip[75, 75], photo_colour(int(sid[1:])))
  reasons = {e.id: e.reason_code for e in entries if e.status == 'skipped'}
  assert reasons == {'x06': 'no_photo', 'x07': 'photo_uncertain', 'x08': 'no_photo',
                     'x09': 'no_photo'}
  assert [e.id for e in entries if e.hidden] == ['x06']
  assert s['hidden_rows'] == {'used': 0, 'skipped': 1}
  # The hidden row itself is used and reported (XlsxWriter's own file keeps its picture).
  s = prepare.prepare(FIXTURES / 'xlsxwriter_grades.xlsx', tmp_path / 'xw', opts)
  assert s['hidden_rows'] == {'used': 1, 'skipped': 0} and s['used'] == 9
  assert 'of which hidden rows' in prepare.format_summary(s)
  hidden = [e for e in manifest.read(tmp_path / 'xw' / 'manifest.csv') if e.hidden]
  assert [(e.id, e.status) for e in hidden] == [('x06', 'used')]
  skip = prepare.check(FIXTURES / 'xlsxwriter_grades.xlsx',
                       prepare.Options(min_side=32, hidden_rows='skip'))[0]
  assert [(e.id, e.reason_code) for e in skip if e.source_row == 7] == [('x06', 'hidden_row')]


def test_check_prints_the_mapping_without_writing(tmp_path):
  run = _cli('--workbook', str(FIXTURES / 'xlsxwriter_libreoffice.xlsx'), '--check',
             '--sheet', 'Ambiguous', '--min_side', '32')
  assert run.returncode == 0, run.stderr
  lines = run.stdout.splitlines()
  assert "sheet 'Ambiguous', header row 1, columns id=A, grade=B, photo=C" in lines[0]
  by_row = {int(l.split()[0]): l for l in lines[2:-1]}
  assert sorted(by_row) == list(range(2, 11))
  assert 'C7 anchored 64x64' in by_row[7] and by_row[7].endswith('ready')
  assert 'photo_ambiguous' in by_row[2] and 'several_photos' in by_row[10]
  assert '[hidden row]' in by_row[9]
  assert lines[-1].startswith('9 rows: 1 ready for face detection, 8 skipped')
  assert sorted(p.name for p in tmp_path.iterdir()) == []


def _started(path, workbook_path, *args):
  return subprocess.Popen([sys.executable, '-m', 'gradejax.prepare', '--workbook', str(workbook_path),
                           '--out', str(path), '--folds', '2', *args], cwd=ROOT, env=child_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope='module')
def small_workbook(tmp_path_factory, photos):
  return xb.write_workbook(tmp_path_factory.mktemp('small') / 'small.xlsx', [
      ('a', 4.5, photos['face']), ('b', 3.5, photos['face_dark']), ('c', 5, photos['face_shift'])])


@pytest.mark.parametrize('sig', ['SIGINT', 'SIGTERM'])
def test_interrupt_keeps_the_previous_output(tmp_path, small_workbook, sig):
  """Issue 24: a signal in the write phase ends the run within 10 s (the pool is closed before
  writing), the previous output intact. Started with SIGINT ignored, as a shell's background
  job is: prepare restores Ctrl-C semantics itself (issue 22)."""
  import signal
  import time
  out = tmp_path / 'data'
  prepare.prepare(small_workbook, out, prepare.Options(folds=2, pivot='median'))
  before = {p.relative_to(out): p.read_bytes() for p in out.rglob('*') if p.is_file()}
  proc = subprocess.Popen(
      [sys.executable, '-m', 'gradejax.prepare', '--workbook', str(small_workbook), '--out',
       str(out), '--folds', '2', '--overwrite', '--no_face', 'centre', '--workers', '2'],
      cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
  deadline = time.time() + 100
  while not list(tmp_path.glob('.data.tmp-*')) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.01)
  assert proc.poll() is None, 'prepare finished before its temporary folder was seen'
  proc.send_signal(getattr(signal, sig))
  sent = time.time()
  try:
    _, err = proc.communicate(timeout=10)
  except subprocess.TimeoutExpired:
    proc.kill()
    proc.communicate()
    pytest.fail(f'prepare did not exit within 10 s of {sig}')
  assert time.time() - sent < 10
  assert proc.returncode != 0 and 'Traceback' not in err and 'interrupted' in err, err
  after = {p.relative_to(out): p.read_bytes() for p in out.rglob('*') if p.is_file()}
  assert after == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ['data']


def test_leftovers_of_a_killed_run_are_cleaned_or_restored(tmp_path, small_workbook):
  out = tmp_path / 'data'
  prepare.prepare(small_workbook, out, prepare.Options(folds=2))
  manifest_text = (out / 'manifest.csv').read_text()
  # A SIGKILL in the worst window (old output moved away, new one not yet in) leaves this:
  old = tmp_path / '.data.old-999999999-abc123'
  out.rename(old)
  (tmp_path / '.data.tmp-999999999-def456' / 'chips').mkdir(parents=True)
  (tmp_path / '.data.tmp-zz9').mkdir()  # named by an older version, without a pid
  alive = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
  try:
    busy = tmp_path / f'.data.tmp-{alive.pid}-ghi789'  # a run still at work: left alone
    busy.mkdir()
    done = prepare.clean_leftovers(out)
    assert (out / 'manifest.csv').read_text() == manifest_text
    assert any('restored' in d for d in done)
    assert sorted(p.name for p in tmp_path.iterdir()) == [busy.name, 'data']
  finally:
    alive.kill()
    alive.wait()
  assert prepare.clean_leftovers(out) == [f'removed {busy.name}, left by an interrupted run']


def test_output_path_problems_are_messages(tmp_path, small_workbook):
  blocker = tmp_path / 'afile'
  blocker.write_text('x')
  run = _cli('--workbook', str(small_workbook), '--out', str(blocker / 'sub' / 'out'))
  assert run.returncode != 0 and 'Traceback' not in run.stderr
  assert f'{blocker} is a file, not a folder' in run.stderr
  mine = tmp_path / 'thesis'
  mine.mkdir()
  (mine / 'chapter1.tex').write_text('precious')
  with pytest.raises(prepare.OutputError, match='holds chapter1.tex, which prepare did not write'):
    prepare.prepare(small_workbook, mine, prepare.Options(overwrite=True))
  assert (mine / 'chapter1.tex').read_text() == 'precious'


def test_a_failing_write_keeps_the_previous_output(tmp_path, small_workbook):
  import resource
  import signal
  out = tmp_path / 'data'
  prepare.prepare(small_workbook, out, prepare.Options(folds=2, pivot='median'))
  before = (out / 'manifest.csv').read_text()

  def small_files():  # files may not grow past 4 KiB: a real write error, as on a full disk
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

  run = subprocess.run([sys.executable, '-m', 'gradejax.prepare', '--workbook', str(small_workbook),
                        '--out', str(out), '--overwrite', '--folds', '2'], cwd=ROOT,
                       env=child_env(), capture_output=True, text=True, timeout=120,
                       preexec_fn=small_files)
  assert run.returncode != 0 and 'Traceback' not in run.stderr, run.stderr
  assert 'writing failed: File too large' in run.stderr
  assert 'the previous output is untouched' in run.stderr
  assert (out / 'manifest.csv').read_text() == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ['data']


def test_next_run_restores_an_output_moved_away_before_anything_else(tmp_path, small_workbook):
  out = tmp_path / 'data'
  prepare.prepare(small_workbook, out, prepare.Options(folds=2))
  before = (out / 'manifest.csv').read_text()
  out.rename(tmp_path / '.data.old-999999999-abc123')  # killed between the two renames
  # Restored first, so the refusal comes before any work (not after detecting every face).
  with pytest.raises(prepare.OutputExistsError, match='already exists; pass --overwrite'):
    prepare.prepare(small_workbook, out, prepare.Options(folds=2))
  assert (out / 'manifest.csv').read_text() == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ['data']


def test_read_only_output_folder_is_a_message(tmp_path, small_workbook):
  import os
  ro = tmp_path / 'ro'
  ro.mkdir()
  if os.geteuid() != 0:
    ro.chmod(0o555)
  elif subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', str(ro)],
                      capture_output=True).returncode != 0:
    pytest.skip('running as root without permission to mount a read-only file system')
  try:
    with pytest.raises(prepare.OutputError, match=r'cannot write in .*ro \(read-only or no '
                       r'permission\)'):
      prepare.prepare(small_workbook, ro / 'out', prepare.Options(folds=2))
  finally:
    if os.geteuid() == 0:
      subprocess.run(['umount', str(ro)], check=True)
    else:
      ro.chmod(0o755)


def test_swap_by_two_renames_where_renameat2_is_missing(tmp_path):
  out, tmp = tmp_path / 'data', tmp_path / '.data.tmp-1-x'
  for folder, text in ((out, 'old run'), (tmp, 'new run')):
    folder.mkdir()
    (folder / 'manifest.csv').write_text(text)
  old = prepare._swap_by_renames(tmp, out)
  assert (out / 'manifest.csv').read_text() == 'new run'
  assert (old / 'manifest.csv').read_text() == 'old run'
  assert re.fullmatch(rf'\.data\.old-{os.getpid()}-\w+', old.name) and not tmp.exists()
  # Killed right there, before removing the old run: the next run removes it (out is complete).
  assert prepare.clean_leftovers(out) == [f'removed {old.name}, left by an interrupted run']
  assert (out / 'manifest.csv').read_text() == 'new run' and not old.exists()


def test_check_reads_a_csv_and_its_photo_folder(tmp_path):
  """--check on the folder + CSV input: each line's file is read from --images_dir; a missing
  file is named, and two lines naming one file are flagged (nothing is written)."""
  (tmp_path / 'photos').mkdir()
  Image.fromarray(np.full((80, 90, 3), 120, np.uint8)).save(tmp_path / 'photos' / 'a.jpg')
  (tmp_path / 'study.csv').write_text('id,grade,file\n1,4.5,a.jpg\n2,5.0,gone.jpg\n3,3.5,a.jpg\n')
  entries, text = prepare.check(tmp_path / 'study.csv', prepare.Options(), tmp_path / 'photos')
  # Issue 24: the same photo for two ids skips both rows, each naming the other.
  assert [(e.source_row, e.status, e.reason_code) for e in entries] == [
      (2, 'skipped', 'duplicate_photo'), (3, 'skipped', 'image_missing'),
      (4, 'skipped', 'duplicate_photo')]
  assert "no file 'gone.jpg'" in entries[1].reason
  assert 'as row 4;' in entries[0].reason and 'as row 2;' in entries[2].reason
  lines = text.splitlines()
  assert 'a.jpg file 90x80' in lines[2] and 'duplicate_photo' in lines[2]
  assert lines[-1].startswith('3 rows: 0 ready')
  assert sorted(p.name for p in tmp_path.iterdir()) == ['photos', 'study.csv']


# --- issue 24: --overwrite replaces only prepare's own output; per-row id and photo rules -------

from gradejax.data import output_folder  # noqa: E402


@pytest.fixture(scope='module')
def photoless(tmp_path_factory):
  """A workbook whose rows all lack a photo: prepare writes manifest and summary in a blink
  (no faces, no TFDS), for the output-folder rules."""
  return xb.write_workbook(tmp_path_factory.mktemp('photoless') / 'school.xlsx',
                           [('a', 4.5, None), ('b', 3.5, None)])


def test_overwrite_replaces_only_what_prepare_wrote(tmp_path, small_workbook):
  out = tmp_path / 'data'
  prepare.prepare(small_workbook, out, prepare.Options(folds=2))
  written = json.loads((out / output_folder.MARKER).read_text())['written']
  assert 'manifest.csv' in written and 'chips' in written and 'tfds' in written
  (out / 'chips' / 'notes.txt').write_text('mine')
  with pytest.raises(prepare.OutputError, match=r'holds chips/notes\.txt, which prepare did not '
                     'write; --overwrite replaces only a folder prepare wrote'):
    prepare.prepare(small_workbook, out, prepare.Options(folds=2, overwrite=True))
  assert (out / 'chips' / 'notes.txt').read_text() == 'mine'
  (out / 'chips' / 'notes.txt').unlink()
  prepare.prepare(small_workbook, out, prepare.Options(folds=2, overwrite=True))  # ours: replaced
  # A folder with a manifest.csv but no marker (not written by this prepare) and another file.
  legacy = tmp_path / 'legacy'
  legacy.mkdir()
  (legacy / 'manifest.csv').write_text('id\n')
  (legacy / 'notes.txt').write_text('mine')
  with pytest.raises(prepare.OutputError, match='holds notes.txt, which prepare did not write'):
    prepare.prepare(small_workbook, legacy, prepare.Options(folds=2, overwrite=True))
  assert (legacy / 'notes.txt').read_text() == 'mine'
  assert sorted(p.name for p in tmp_path.iterdir()) == ['data', 'legacy']


def test_the_input_workbook_inside_out_is_never_deleted(tmp_path, photoless):
  out = tmp_path / 'data'
  prepare.prepare(photoless, out, prepare.Options(folds=2))
  inside = out / 'school.xlsx'
  inside.write_bytes(photoless.read_bytes())
  with pytest.raises(prepare.OutputError, match=r'holds the input .*school\.xlsx, which '
                     '--overwrite would delete'):
    prepare.prepare(inside, out, prepare.Options(folds=2, overwrite=True))
  assert inside.read_bytes() == photoless.read_bytes()


def test_a_symlinked_out_is_resolved_and_kept(tmp_path, photoless):
  target, link = tmp_path / 'real', tmp_path / 'link'
  prepare.prepare(photoless, target, prepare.Options(folds=2))
  link.symlink_to(target)
  prepare.prepare(photoless, link, prepare.Options(folds=2, pivot='median', overwrite=True))
  assert link.is_symlink() and link.resolve() == target
  assert json.loads((target / 'summary.json').read_text())['options']['pivot'] == 'median'
  assert sorted(p.name for p in tmp_path.iterdir()) == ['link', 'real']
  # A leftover that is a link (as an old version's swap left) is really removed, and so reported.
  (tmp_path / '.real.tmp-999999999-abc').symlink_to(target)
  assert output_folder.clean_leftovers(target) == [
      'removed .real.tmp-999999999-abc, left by an interrupted run']
  assert sorted(p.name for p in tmp_path.iterdir()) == ['link', 'real'] and target.is_dir()


def test_a_concurrent_run_stops_at_once(tmp_path, photoless):
  import time
  out = tmp_path / 'data'
  holder = subprocess.Popen([sys.executable, '-c', (
      'import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); '
      'fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode()); '
      'print("locked", flush=True); time.sleep(60)'), str(tmp_path / '.data.lock')],
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'locked'
    start = time.time()
    with pytest.raises(prepare.OutputError, match=rf'another prepare \(pid {holder.pid}\) is '
                       'writing it now; wait for it to finish'):
      prepare.prepare(photoless, out, prepare.Options(folds=2, overwrite=True))
    assert time.time() - start < 2 and not out.exists()
  finally:
    holder.kill()
    holder.wait()
  prepare.prepare(photoless, out, prepare.Options(folds=2))  # the lock is free again
  assert sorted(p.name for p in tmp_path.iterdir()) == ['data']  # the lock file goes too


def _flat(k: int, fmt: str = 'PNG') -> bytes:
  return xb.encode(np.full((80, 80, 3), (30 * k % 256, 200 - 9 * k, 40 + 11 * k), np.uint8), fmt)


def test_ids_that_cannot_be_file_names_and_duplicate_photos(tmp_path):
  long_id = 'L' * 300
  rows = [(long_id, 4.0, _flat(1)), (12345678901234567890, 4.5, _flat(2)),
          (1.2345678901234567e19, 5.0, _flat(3)), ('Ab', 3.0, _flat(4)), ('ab', 3.5, _flat(5)),
          ('con', 4.0, _flat(6)), ('d1', 4.0, _flat(7)), ('d2', 5.0, _flat(7, 'BMP')),
          ('x', 4.2, _flat(8))]
  path = xb.write_workbook(tmp_path / 'w.xlsx', rows)
  # openpyxl (like Excel) stores a number as a double: A3 is rewritten with the exact digits a
  # writer keeping text-like numbers stores, which must be read back digit for digit.
  xb._replace_parts(path, {}, lambda parts: {**parts, 'xl/worksheets/sheet1.xml': re.sub(
      rb'(<c r="A3"[^>]*><v>)[^<]*', rb'\g<1>12345678901234567890',
      parts['xl/worksheets/sheet1.xml'])})
  out = tmp_path / 'out'
  prepare.prepare(path, out, prepare.Options(folds=2, no_face='centre', pivot='median'))
  got = {e.source_row: e for e in manifest.read(out / 'manifest.csv')}
  assert got[2].id == long_id and got[2].status == 'used'
  assert got[3].id == '12345678901234567890' and got[3].status == 'used'
  assert got[4].reason_code == 'id_not_exact' and '15' in got[4].reason
  used = [e for e in got.values() if e.status == 'used']
  files = [pathlib.PurePath(e.file).name for e in used]
  assert len({f.casefold() for f in files}) == len(files) == 6
  assert all(len(f) <= 80 for f in files) and 'x.png' in files
  assert not any(f.split('.')[0].casefold() == 'con' for f in files)
  for e in used:  # each chip is its own row's photo (centre crop of a flat colour)
    k = [r[0] for r in rows].index(int(e.id) if e.id.isdigit() else e.id) + 1
    np.testing.assert_array_equal(images.read_png(out / e.file)[75, 75],
                                  np.asarray(Image.open(io.BytesIO(rows[k - 1][2])).convert('RGB'))[0, 0])
  # Same pixels in a PNG and a BMP: both rows skipped, naming each other.
  assert got[8].reason.startswith('duplicate_photo: the same picture (same pixels) as row 9;')
  assert got[9].reason.startswith('duplicate_photo: the same picture (same pixels) as row 8;')


def test_csv_paths_must_stay_inside_the_photo_folder(tmp_path):
  photos, outside = tmp_path / 'photos', tmp_path / 'outside'
  photos.mkdir()
  outside.mkdir()
  for folder, name, k in ((photos, 'a.png', 1), (outside, 'x.png', 2), (outside, 'y.png', 3)):
    (folder / name).write_bytes(_flat(k))
  (tmp_path / 'study.csv').write_text(
      f'id,grade,file\n1,4.5,a.png\n2,5.0,../outside/x.png\n3,3.5,{outside / "y.png"}\n')
  entries, _ = prepare.check(tmp_path / 'study.csv', prepare.Options(), photos)
  assert [(e.source_row, e.reason_code) for e in entries] == [
      (2, ''), (3, 'image_outside_folder'), (4, 'image_outside_folder')]
  assert "'../outside/x.png' lies outside the photo folder" in entries[1].reason
  entries, _ = prepare.check(tmp_path / 'study.csv', prepare.Options(images_outside=True), photos)
  assert [e.status for e in entries] == ['used'] * 3


def test_a_failing_swap_keeps_the_old_output(tmp_path, photoless, monkeypatch):
  """Issue 22: the swap that moves the new output in fails after everything was built; the old
  output must still be there (an rmtree + rename 'swap' loses it)."""
  out = tmp_path / 'data'
  prepare.prepare(photoless, out, prepare.Options(folds=2))
  before = (out / 'summary.json').read_text()
  real_rename = os.rename

  def rename(src, dst, *a, **kw):  # the file system refuses to move the new output onto --out
    if os.fspath(dst) == os.fspath(out) and pathlib.Path(src).name.startswith('.data.tmp-'):
      raise OSError(5, 'Input/output error', os.fspath(dst))
    return real_rename(src, dst, *a, **kw)

  monkeypatch.setattr(os, 'rename', rename)
  for renameat2 in (True, False):  # Linux's atomic exchange, and the two-rename fallback
    if not renameat2:
      monkeypatch.setattr(output_folder, '_exchange', lambda a, b: False)
    before = (out / 'summary.json').read_text()
    try:
      prepare.prepare(photoless, out, prepare.Options(folds=2, pivot=3.0 + 0.5 * renameat2,
                                                           overwrite=True))
      replaced = True
    except prepare.OutputError as e:
      assert 'the previous output is untouched' in str(e)
      replaced = False
    text = (out / 'summary.json').read_text()
    assert text == before or (replaced and text != before)
    assert output_folder.foreign_entry(out) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ['data'], renameat2
  assert not replaced  # the fallback had to fail: its second rename is the refused one


def test_folder_as_workbook_and_a_header_on_row_12(tmp_path):
  from gradejax.data import workbook
  with pytest.raises(workbook.WorkbookError, match='is a folder, not a workbook file'):
    workbook.read_workbook(tmp_path)
  path = xb.write_workbook(tmp_path / 'w.xlsx', [('a', 4.0, None)], header_row=12,
                           headers=('Pupil', 'Score', 'photo'))
  with pytest.raises(workbook.WorkbookError, match='--id_column/--grade_column'):
    workbook.read_workbook(path)
  t = workbook.read_workbook(path, id_column='Pupil', grade_column='Score')
  assert t.header_row == 12 and [(r.source_row, r.id_value, r.grade_value) for r in t.rows] == [
      (13, 'a', 4.0)]


def test_summary_compares_the_skipped_rows_grades_with_the_used_rows(prepared):
  # The skipped rows with a grade in the manifest (the six photo problems, all at 4.0; 'abc',
  # none and 6.5 have no valid grade, and a duplicate or missing id keeps none) against the 7
  # used rows; the reference is scipy's Mann-Whitney U on the hand-listed grades, the rates
  # counted by hand.
  out, summary = prepared
  skipped, used = [4.0] * 6, [4.5, 3.5, 5.5, 3.0, 4.0, 2.75, 5.0]
  sel = json.loads((out / 'summary.json').read_text())['skipped_grades']
  assert sel == summary['skipped_grades']
  assert sel['skipped_with_grade'] == 6
  assert sel['p'] == pytest.approx(scipy.stats.mannwhitneyu(skipped, used).pvalue, rel=1e-12)
  assert (sel['skipped_median'], sel['used_median']) == (4.0, 4.0)
  below, above = summary['class_names']
  assert sel['skip_rate_by_class'] == {below: 0.0, above: pytest.approx(6 / 10)}
  assert sel['differs'] is False and 'WARNING' not in prepare.format_summary(summary)
