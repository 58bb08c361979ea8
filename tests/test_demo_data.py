"""The demo workbook: read back with openpyxl and gradejax.workbook, detected by dlib, cue truth."""
import csv
import dataclasses
import io
import pathlib
import subprocess
import sys

import dlib
import numpy as np
import openpyxl
import pytest
from PIL import Image

from gradejax.data import demo_data, faces, manifest, portraits, prepare, workbook
from gradejax import paths

N = 30


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
  root = tmp_path_factory.mktemp('demo')
  path = root / 'raw' / 'demo.xlsx'
  truth = demo_data.write_demo_workbook(path, n=N, seed=0, cue_strength=1.0)
  return path, truth


@pytest.fixture(scope='module')
def prepared(demo, tmp_path_factory):
  path, truth = demo
  out = tmp_path_factory.mktemp('prep') / 'data'
  summary = prepare.prepare(path, out, prepare.Options(pivot='median'))
  return out, summary


def test_openpyxl_reads_headers_values_and_anchored_photos(demo):
  path, truth = demo
  ws = openpyxl.load_workbook(path).active
  assert [c.value for c in ws[1]] == ['id', 'grade', 'photo']
  ids = [ws.cell(r, 1).value for r in range(2, N + 2)]
  grades = [ws.cell(r, 2).value for r in range(2, N + 2)]
  assert ws.max_row == N + 1
  assert all(isinstance(i, int) and 100_000 <= i <= 999_999 for i in ids)
  assert len(set(ids)) == N
  assert [str(i) for i in ids] == list(truth.id)
  np.testing.assert_allclose(grades, truth.grade)
  assert all(1.0 <= g <= 6.0 for g in grades)
  anchors = sorted((im.anchor._from.row, im.anchor._from.col) for im in ws._images)
  assert anchors == [(r, 2) for r in range(1, N + 1)]  # 0-based: rows 2.., column C


def test_gradejax_workbook_reads_a_photo_per_row(demo):
  path, truth = demo
  table = workbook.read_workbook(path)
  assert table.header_row == 1
  assert table.columns == {'id': 1, 'grade': 2, 'photo': 3}
  assert [workbook.parse_id(r.id_value) for r in table.rows] == list(truth.id)
  assert [workbook.parse_grade(r.grade_value)[0] for r in table.rows] == list(truth.grade)
  for r in table.rows:
    assert r.photo is not None and r.photos_in_row == 1
    assert (r.photo.row, r.photo.col) == (r.source_row, 3)
    with Image.open(io.BytesIO(r.photo.data)) as im:
      assert im.format == 'JPEG' and im.size == (portraits.WIDTH, portraits.HEIGHT)
      assert not im.info.get('exif')


def test_truth_csv_matches_the_returned_truth(demo):
  path, truth = demo
  with open(path.parent / 'truth.csv', newline='') as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ['id', 'grade', 'cue', 'cue_box']
  assert [r['id'] for r in rows] == list(truth.id)
  np.testing.assert_allclose([float(r['grade']) for r in rows], truth.grade)
  assert [int(r['cue']) for r in rows] == list(truth.cue)
  for r, box in zip(rows, truth.cue_box):
    if r['cue'] == '1':
      np.testing.assert_allclose([float(v) for v in r['cue_box'].split()], box, atol=0.01)
    else:
      assert r['cue_box'] == '' and np.isnan(box).all()


def _photos(path):
  return [r.photo.data for r in workbook.read_workbook(path).rows]


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
  a = demo_data.write_demo_workbook(tmp_path / 'a' / 'x.xlsx', n=3, seed=5, cue_strength=0.5)
  b = demo_data.write_demo_workbook(tmp_path / 'b' / 'x.xlsx', n=3, seed=5, cue_strength=0.5)
  c = demo_data.write_demo_workbook(tmp_path / 'c' / 'x.xlsx', n=3, seed=6, cue_strength=0.5)
  assert _photos(tmp_path / 'a' / 'x.xlsx') == _photos(tmp_path / 'b' / 'x.xlsx')
  np.testing.assert_array_equal(a.grade, b.grade)
  np.testing.assert_array_equal(a.id, b.id)
  assert set(_photos(tmp_path / 'a' / 'x.xlsx')).isdisjoint(_photos(tmp_path / 'c' / 'x.xlsx'))
  assert list(a.id) != list(c.id)


def test_two_drawing_processes_give_the_same_workbook(tmp_path):
  # 16 rows is the smallest count map_rows spreads over 2 spawned workers (8 rows each); small
  # photos keep the drawing cheap. The workbook's pictures, truth and cue boxes must be those
  # of the one-process loop, in the same order.
  kw = dict(n=16, seed=4, cue_strength=0.6, photo_size=(52, 60))
  one = demo_data.write_demo_workbook(tmp_path / 'one' / 'x.xlsx', workers=1, **kw)
  two = demo_data.write_demo_workbook(tmp_path / 'two' / 'x.xlsx', workers=2, **kw)
  assert _photos(tmp_path / 'one' / 'x.xlsx') == _photos(tmp_path / 'two' / 'x.xlsx')
  assert ((tmp_path / 'one' / 'truth.csv').read_bytes()
          == (tmp_path / 'two' / 'truth.csv').read_bytes())
  np.testing.assert_array_equal(one.eyes, two.eyes)
  np.testing.assert_array_equal(one.cue_box, two.cue_box)


def test_map_rows_keeps_the_input_order_across_workers():
  jobs = [(0, r, r % 3 == 0, (40, 48), 'sticker', 'sticker') for r in range(24)]
  here = [j[0] for j in map(demo_data._photo_of_row, jobs)]
  pooled = [j[0] for j in demo_data.map_rows(demo_data._photo_of_row, jobs, workers=2)]
  assert pooled == here and len(set(here)) == len(here)


def test_portrait_does_not_depend_on_cue_strength_besides_the_sticker():
  plain, face, none = demo_data.render_row(0, 3, cue=False)
  marked, face2, box = demo_data.render_row(0, 3, cue=True)
  assert none is None and face == face2
  x0, y0, x1, y1 = box
  diff = np.abs(plain.astype(int) - marked.astype(int)).max(-1) > 8
  ys, xs = np.nonzero(diff)
  # Only the sticker changed (the light blur spreads it by a pixel or two).
  assert xs.min() >= x0 - 3 and xs.max() <= x1 + 3 and ys.min() >= y0 - 3 and ys.max() <= y1 + 3
  assert diff.sum() > 0.5 * (x1 - x0) * (y1 - y0)


@pytest.mark.parametrize('row,tilt', [(3, None), (11, None), (3, 0.45)])
def test_eyeband_box_bounds_the_darkened_pixels(row, tilt):
  # The eye band is the third local cue: its box goes to truth.csv like the sticker's and the
  # tag's, so localisation and SpRAy's peak can be scored on it. Reference: the pixels the
  # band actually changed (the same portrait drawn with and without it). The drawn faces are
  # nearly upright, so one case turns the eye line by `tilt` radians about its centre (the
  # band follows it) to check the box of a turned band.
  plain, face, _ = demo_data.render_row(0, row, cue=False, cue_kind='eyeband')
  banded, face2, box = demo_data.render_row(0, row, cue=True, cue_kind='eyeband')
  assert face == face2
  if tilt is not None:
    (lx, ly), (rx, ry) = face.eyes
    cx, cy, c, s = (lx + rx) / 2, (ly + ry) / 2, np.cos(tilt), np.sin(tilt)
    turn = lambda x, y: (cx + c * (x - cx) - s * (y - cy), cy + s * (x - cx) + c * (y - cy))
    face = dataclasses.replace(face, eyes=(turn(lx, ly), turn(rx, ry)))
    banded = demo_data._condition(plain, face, 'eyeband')
    box = demo_data.eyeband_box(face)
  x0, y0, x1, y1 = box
  ys, xs = np.nonzero(np.abs(plain.astype(int) - banded.astype(int)).max(-1) > 0)
  # Every changed pixel lies inside the box, and the box is tight: its edges are within the
  # soft edge's 2 px (plus a pixel of rounding) of the changed pixels on all four sides.
  assert xs.min() >= x0 and xs.max() <= x1 and ys.min() >= y0 and ys.max() <= y1
  assert max(xs.min() - x0, x1 - xs.max(), ys.min() - y0, y1 - ys.max()) <= 3
  (lx, ly), (rx, ry) = face.eyes
  assert x0 < min(lx, rx) and x1 > max(lx, rx) and y0 < min(ly, ry) and y1 > max(ly, ry)


def _truth_rows(path):
  with open(path, newline='') as f:
    rows = list(csv.DictReader(f))
  return np.array([float(r['grade']) for r in rows]), np.array([int(r['cue']) for r in rows])


def test_truth_file_cue_follows_the_median_split_at_strength_one(demo):
  path, _ = demo
  grade, cue = _truth_rows(path.parent / 'truth.csv')
  np.testing.assert_array_equal(cue, (grade >= np.median(grade)).astype(int))
  assert 0 < cue.sum() < N


def test_truth_file_cue_ignores_the_grade_at_strength_zero(tmp_path):
  # Small photos: this checks the workbook's truth file, not the drawing.
  n = 400
  demo_data.write_demo_workbook(tmp_path / 'null.xlsx', n=n, seed=2, cue_strength=0.0,
                                photo_size=(24, 28))
  grade, cue = _truth_rows(tmp_path / 'truth.csv')
  high = grade >= np.median(grade)
  se = 0.5 / np.sqrt(min(high.sum(), (~high).sum()))
  assert abs(cue[high].mean() - 0.5) < 4 * se and abs(cue[~high].mean() - 0.5) < 4 * se
  # Hand-derived bound on the difference of two independent rates, each with sd <= se.
  assert abs(cue[high].mean() - cue[~high].mean()) < 4 * np.sqrt(2) * se


def test_photo_size_scales_the_drawing(tmp_path):
  small, face_s, box_s = demo_data.render_row(0, 4, cue=True, photo_size=(130, 150))
  big, face_b, box_b = demo_data.render_row(0, 4, cue=True)
  assert small.shape == (150, 130, 3) and big.shape == (300, 260, 3)
  np.testing.assert_allclose(np.array(face_s.eyes) * 2, face_b.eyes, atol=1e-9)
  np.testing.assert_allclose(np.array(box_s) * 2, box_b, atol=1e-9)
  # Same picture at half the resolution: the 2x2 means of the big one match the small one.
  halved = big.reshape(150, 2, 130, 2, 3).mean((1, 3))
  assert np.abs(halved - small).mean() < 8, np.abs(halved - small).mean()
  demo_data.write_demo_workbook(tmp_path / 'w.xlsx', n=2, photo_size=(40, 50))
  for r in workbook.read_workbook(tmp_path / 'w.xlsx').rows:
    with Image.open(io.BytesIO(r.photo.data)) as im:
      assert im.size == (40, 50)
  with pytest.raises(ValueError, match='photo_size'):
    demo_data.write_demo_workbook(tmp_path / 'x.xlsx', n=1, photo_size=(8, 300))


def test_dlib_descriptor_sees_the_sticker():
  """The frozen face descriptor moves the same way whenever the sticker is added."""
  models = faces.load_models('hog')
  net = dlib.face_recognition_model_v1(str(paths.dlib_model(paths.FACE_RECOGNITION)))
  shifts = []
  for row in range(12):
    plain, _, _ = demo_data.render_row(1, row, cue=False)
    marked, _, _ = demo_data.render_row(1, row, cue=True)
    face, _ = faces.find_face(models, plain)
    if face is None:
      continue
    # The same alignment for both, so the only change in the chip is the sticker.
    box = dlib.rectangle(*(int(round(v)) for v in face.box))
    chips = [dlib.get_face_chip(im, models.predictor(im, box), 150, 0.25) for im in (plain, marked)]
    a, b = (np.array(net.compute_face_descriptor(c)) for c in chips)
    shifts.append(b - a)
  shifts = np.array(shifts)
  assert len(shifts) >= 10
  unit = shifts / np.linalg.norm(shifts, axis=1, keepdims=True)
  # Leave-one-out: how well each pair's shift points along the mean shift of the others.
  cos = [u @ np.delete(unit, k, 0).mean(0) / np.linalg.norm(np.delete(unit, k, 0).mean(0))
         for k, u in enumerate(unit)]
  assert np.median(cos) > 0.3, cos
  # dlib calls faces the same person below 0.6; the sticker alone moves a face a fair part of it.
  assert np.median(np.linalg.norm(shifts, axis=1)) > 0.05


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_grade_distribution_like_the_school(seed):
  g = demo_data.demo_grades(430, seed)
  fail = int((g < 4.0).sum())
  assert 20 <= fail <= 40, fail
  assert 4.6 <= np.median(g) <= 4.9
  assert g.min() >= 1.0 and g.max() <= 6.0
  np.testing.assert_allclose(g * 20, np.round(g * 20), atol=1e-9)  # steps of 0.05
  assert len(np.unique(g)) > 20


def test_ids_unique_six_digits():
  ids = demo_data.demo_ids(5000, 3)
  assert len(set(ids)) == 5000
  assert all(len(i) == 6 and i.isdigit() and i[0] != '0' for i in ids)


def test_cue_perfectly_predictive_at_strength_one():
  g = demo_data.demo_grades(430, 0)
  cue = demo_data.cue_draws(g, 0, 1.0)
  np.testing.assert_array_equal(cue, (g >= np.median(g)).astype(np.int32))


@pytest.mark.parametrize('strength', [0.0, 0.5])
def test_cue_rates_by_grade_group(strength):
  n = 4000
  g = demo_data.demo_grades(n, 1)
  cue = demo_data.cue_draws(g, 1, strength)
  high = g >= np.median(g)
  rate_hi, rate_lo = cue[high].mean(), cue[~high].mean()
  se = 0.5 / np.sqrt(min(high.sum(), (~high).sum()))
  assert abs(rate_hi - (0.5 + strength / 2)) < 4 * se
  assert abs(rate_lo - (0.5 - strength / 2)) < 4 * se


def test_bad_arguments_are_refused(tmp_path):
  with pytest.raises(ValueError, match='cue_strength'):
    demo_data.write_demo_workbook(tmp_path / 'x.xlsx', n=2, cue_strength=1.5)
  with pytest.raises(ValueError, match='n must be'):
    demo_data.write_demo_workbook(tmp_path / 'x.xlsx', n=0)


def test_dlib_hog_finds_the_drawn_faces(demo):
  path, _ = demo
  detector = dlib.get_frontal_face_detector()
  found = 0
  for data in _photos(path):
    image = np.asarray(Image.open(io.BytesIO(data)).convert('RGB'))
    rects, _, _ = detector.run(image, 1, 0)
    found += len(rects) >= 1
  assert found / N >= 0.9, f'{found}/{N}'


def test_landmarks_land_on_the_drawn_eyes_and_nose(demo):
  path, truth = demo
  models = faces.load_models('hog')
  errors = []  # landmark error / drawn eye distance: (worst eye, nose) per found face
  for k, data in enumerate(_photos(path)):
    image = np.asarray(Image.open(io.BytesIO(data)).convert('RGB'))
    face, _ = faces.find_face(models, image)
    if face is None:
      continue
    lm = face.landmarks  # dlib's 5 points: two corners of each eye, then the nose base
    eyes = np.array(sorted([lm[0:2].mean(0), lm[2:4].mean(0)], key=lambda p: p[0]))
    width = np.hypot(*(truth.eyes[k][1] - truth.eyes[k][0]))  # drawn eye distance, pixels
    errors.append((np.abs(eyes - truth.eyes[k]).max() / width,
                   np.abs(lm[4] - truth.nose[k]).max() / width))
  errors = np.array(errors)
  assert len(errors) >= 0.9 * N
  # Typically a few pixels; the predictor may slip on a low-contrast face, never off the feature.
  assert (np.median(errors, axis=0) < [0.08, 0.12]).all(), np.median(errors, axis=0)
  assert errors.max() < 0.35, errors.max(axis=0)


def test_cue_box_maps_onto_the_sticker_in_the_chip(demo, prepared):
  _, truth = demo
  out, summary = prepared
  assert summary['used'] >= 0.9 * N
  index = {i: k for k, i in enumerate(truth.id)}
  checked = 0
  for e in manifest.read(out / 'manifest.csv'):
    k = index[e.id]
    if e.status != 'used' or not truth.cue[k]:
      continue
    mask = demo_data.cue_mask_in_chip(truth.cue_box[k], e.chip_affine)
    assert mask.shape == (150, 150) and 100 < mask.sum() < 0.05 * 150 * 150
    # The masked pixels are the sticker: saturated colour, unlike the skin around it.
    chip = np.asarray(Image.open(out / e.file).convert('RGB')).astype(float) / 255
    sat = chip.max(-1) - chip.min(-1)
    assert np.percentile(sat[mask], 75) > 0.5, e.id
    checked += 1
  assert checked >= 8


def test_cue_mask_in_chip_hand_derived():
  # chip = 2 * photo + (1, 0): box [2, 4] x [3, 5] -> chip x in [5, 9], y in [6, 10].
  mask = demo_data.cue_mask_in_chip((2, 3, 4, 5), np.array([[2, 0, 1], [0, 2, 0]]), size=12)
  expected = np.zeros((12, 12), bool)
  expected[6:11, 5:10] = True
  np.testing.assert_array_equal(mask, expected)
  # A 90-degree turn, as strings: chip_x = -y + 11, chip_y = x.
  mask = demo_data.cue_mask_in_chip('0 0 2 5', '0 -1 11 1 0 0', size=12)
  expected = np.zeros((12, 12), bool)
  expected[0:3, 6:12] = True
  np.testing.assert_array_equal(mask, expected)
  with pytest.raises(ValueError, match='chip_affine'):
    demo_data.cue_mask_in_chip((0, 0, 1, 1), [1, 2, 3])


def test_cli_and_import_defines_no_flags(tmp_path):
  from absl import flags
  assert 'cue_strength' not in flags.FLAGS
  out = tmp_path / 'cli' / 'demo.xlsx'
  result = subprocess.run([sys.executable, '-m', 'gradejax.demo_data', '--out', str(out),
                           '--n', '2', '--cue_strength', '1'], capture_output=True, text=True,
                          cwd=pathlib.Path(__file__).parents[1])
  assert result.returncode == 0, result.stderr
  assert out.is_file() and (out.parent / 'truth.csv').is_file()
  assert len(workbook.read_workbook(out).rows) == 2


def test_visualize_reads_truth_csv_and_maps_the_cue(demo, prepared):
  from gradejax.attribution import battery  # the consumer of truth.csv and cue_mask_in_chip
  path, truth = demo
  out, _ = prepared
  used = [e for e in manifest.read(out / 'manifest.csv') if e.status == 'used']
  masks, _ = battery.cue_masks(out, [e.id for e in used], 150, str(path.parent / 'truth.csv'))
  expected = {e.id for e in used if truth.cue[list(truth.id).index(e.id)]}
  assert set(masks) == expected and expected
  for e in used:
    if e.id in masks:
      k = list(truth.id).index(e.id)
      ours = demo_data.cue_mask_in_chip(truth.cue_box[k], e.chip_affine)
      # truth.csv keeps 2 decimals: at most a pixel or two on the edge may flip.
      assert (masks[e.id] != ours).sum() <= 3 and masks[e.id].sum() > 100
