"""prepare's process pool and its folder + CSV input: the same chips and manifest as one process
reading the workbook, bit for bit."""
import csv
import multiprocessing
import pathlib

import numpy as np
import pytest

from gradejax.data import demo_data, faces, folder_input, images, parallel, prepare, workbook

N = 6  # demo photos: enough for two chunks per worker and a skipped row


@pytest.fixture(scope='module')
def study(tmp_path_factory):
  """A demo workbook of N rows, and the same study as a photo folder + CSV (row 4's photo
  replaced by an unreadable file, so the skip path travels through the pool too)."""
  root = tmp_path_factory.mktemp('study')
  xlsx = root / 'demo.xlsx'
  demo_data.write_demo_workbook(xlsx, n=N, seed=3)
  table = workbook.read_workbook(xlsx)
  photos = root / 'photos'
  photos.mkdir()
  with open(root / 'study.csv', 'w', newline='', encoding='utf-8') as f:
    w = csv.writer(f, delimiter=';')  # a European-locale spreadsheet's CSV
    w.writerow(['Student ID', 'Grade', 'File name'])
    for r in table.rows:
      name = f'p{r.source_row}.jpg'
      (photos / name).write_bytes(r.photo.data)
      w.writerow([r.id_value, str(r.grade_value).replace('.', ','), name])
  return xlsx, root / 'study.csv', photos, table


def test_pool_gives_the_single_process_results_in_order(study):
  table = study[3]
  sources = [r.photo.data for r in table.rows] + [b'not an image']
  job = parallel.Job(faces.FaceOptions())
  seen = []
  two = list(parallel.map_photos(sources, job, workers=2, chunksize=2,
                                 progress=lambda d, t: seen.append((d, t))))
  assert seen == [(i + 1, len(sources)) for i in range(len(sources))]
  # The reference: dlib in this process, photo by photo (what prepare did before the pool).
  models = faces.load_models('hog')
  for src, b in zip(sources, two):
    image, reason = images.decode_photo(src)
    face, reason = faces.find_face(models, image) if reason is None else (None, reason)
    assert b.reason == reason
    if reason is None:
      assert images.encode_png(b.chip) == images.encode_png(face.chip)
      np.testing.assert_array_equal(b.affine, face.affine)
      assert b.box == face.box and b.score == face.score
  assert sum(r.reason is None for r in two) == N


def test_interrupt_terminates_the_workers(study):
  table = study[3]

  def interrupt(done, total):
    raise KeyboardInterrupt  # what Ctrl-C raises in the parent, here after the first photo

  with pytest.raises(KeyboardInterrupt):
    list(parallel.map_photos([r.photo.data for r in table.rows], parallel.Job(faces.FaceOptions()),
                             workers=2, progress=interrupt))
  assert multiprocessing.active_children() == []


def test_folder_with_two_workers_equals_workbook_with_one(study, tmp_path):
  xlsx, csv_path, photos, _ = study
  a = prepare.prepare(xlsx, tmp_path / 'a', workers=1)
  b = prepare.prepare(csv_path, tmp_path / 'b', workers=2, images_dir=photos)
  ma = (tmp_path / 'a' / 'manifest.csv').read_bytes()
  assert ma == (tmp_path / 'b' / 'manifest.csv').read_bytes()
  assert len(ma.splitlines()) == N + 1 and a['used'] == N
  chips = sorted(p.relative_to(tmp_path / 'a') for p in (tmp_path / 'a' / 'chips').rglob('*.png'))
  assert len(chips) == N
  assert chips == sorted(p.relative_to(tmp_path / 'b') for p in (tmp_path / 'b').rglob('*.png'))
  for rel in chips:
    assert (tmp_path / 'a' / rel).read_bytes() == (tmp_path / 'b' / rel).read_bytes(), rel
  for k in ('workbook', 'sheet', 'seconds'):  # the input's name and the time differ, nothing else
    a.pop(k), b.pop(k)
  assert a == b


def test_folder_input_names_the_line_and_the_file(tmp_path):
  (tmp_path / 'x.csv').write_text('id,grade,file\ns1,4.0,gone.jpg\n\ns2,5.0,\n', encoding='utf-8')
  t = folder_input.read_folder(tmp_path / 'x.csv')
  assert [(r.source_row, r.id_value, r.grade_value) for r in t.rows] == [(2, 's1', '4.0'),
                                                                         (4, 's2', '5.0')]
  assert t.blank_rows == 1 and t.rows[1].photo is None
  r = parallel.process_photo(None, parallel.photo_source(t.rows[0].photo),
                             parallel.Job(faces.FaceOptions()))
  assert r.reason == f"image_missing: no file 'gone.jpg' in {tmp_path}"
  (tmp_path / 'y.csv').write_text('student,grade\ns1,4\n', encoding='utf-8')
  with pytest.raises(workbook.WorkbookError, match=r'y\.csv, line 1: no id / file name column'):
    folder_input.read_folder(tmp_path / 'y.csv')


def test_the_pool_is_gone_when_the_results_are(study):
  """Issue 24: no worker outlives the photo phase, neither when the consumer takes exactly the
  results (zip never asks for one more) nor when it stops early inside ``mapped``."""
  sources = [r.photo.data for r in study[3].rows]
  job = parallel.Job(faces.FaceOptions())
  results = parallel.map_photos(sources, job, workers=2)  # alive, as in the caller's frame
  taken = [r for _, r in zip(sources, results)]
  assert len(taken) == N and multiprocessing.active_children() == []
  with parallel.mapped(sources[:2], job, workers=2) as results:
    next(results)
  assert multiprocessing.active_children() == []
