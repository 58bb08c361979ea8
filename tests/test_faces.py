"""Face detection + alignment against dlib's own outputs on skimage's astronaut()."""
import dlib
import numpy as np
import pytest
import skimage.data
from scipy import ndimage

from gradejax.data import faces


@pytest.fixture(scope='module')
def models():
  return faces.load_models('hog')


@pytest.fixture(scope='module')
def astronaut():
  return skimage.data.astronaut()  # uint8 [512, 512, 3], one face near (220, 120)


def _eye_centres(points):
  """5-point order: right eye (0, 1), left eye (2, 3) -> [2, 2]."""
  return np.stack([points[0:2].mean(0), points[2:4].mean(0)])


def test_best_detection_wins_over_hog_false_positive(models, astronaut):
  found = faces.detect(models, astronaut, upsample=1)
  assert len(found) == 2  # dlib also fires weakly on the suit (score ~0.12)
  assert found[0].score > 1.0 > 0.3 > found[1].score
  x0, y0, x1, y1 = found[0].box
  assert 150 < (x0 + x1) / 2 < 290 and 50 < (y0 + y1) / 2 < 190
  face, reason = faces.find_face(models, astronaut)
  assert reason is None and face.box == found[0].box and not face.centre_crop


def test_chip_is_dlibs_face_chip(models, astronaut):
  face, _ = faces.find_face(models, astronaut)
  shape = models.predictor(astronaut, dlib.rectangle(*face.box))
  np.testing.assert_array_equal(face.chip, dlib.get_face_chip(astronaut, shape, 150, 0.25))


def test_affine_maps_landmarks_onto_dlib_template(models, astronaut):
  face, _ = faces.find_face(models, astronaut)
  mapped = faces.apply_affine(face.affine, face.landmarks)
  template = faces.template_points(150, 0.25)
  # The chip is a least-squares similarity fit to the template, so points land within ~2 px.
  assert np.abs(mapped - template).max() < 2.0
  np.testing.assert_allclose(_eye_centres(mapped), _eye_centres(template), atol=1.5)


def test_affine_predicts_chip_pixels(models, astronaut):
  face, _ = faces.find_face(models, astronaut)
  inverse = np.linalg.inv(np.vstack([face.affine, [0, 0, 1]]))
  yy, xx = np.mgrid[0:150, 0:150]
  src = inverse @ np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)])
  resampled = np.stack([ndimage.map_coordinates(astronaut[..., c].astype(float), [src[1], src[0]],
                                                order=1) for c in range(3)], -1)
  diff = np.abs(resampled.reshape(150, 150, 3) - face.chip)
  assert diff.mean() < 1.0 and np.percentile(diff, 99) < 8


def test_eyes_in_the_chip_sit_on_the_template(models, astronaut):
  face, _ = faces.find_face(models, astronaut)
  found = faces.detect(models, face.chip, upsample=1)
  assert found, 'the aligned chip should still hold a detectable face'
  shape = models.predictor(np.ascontiguousarray(face.chip), dlib.rectangle(*found[0].box))
  pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], float)
  np.testing.assert_allclose(_eye_centres(pts), _eye_centres(faces.template_points()), atol=2.5)


def test_several_faces_policies(models, astronaut):
  crop = astronaut[30:230, 120:320]
  canvas = np.full((200, 440, 3), 200, np.uint8)
  canvas[:, :200], canvas[:, 240:] = crop, crop
  canvas[:, 240:] = (canvas[:, 240:] * 0.7).astype(np.uint8)  # a darker copy scores differently
  found = faces.detect(models, canvas, upsample=1)
  strong = [d for d in found if d.score >= 0.5]
  assert len(strong) == 2
  best, reason = faces.find_face(models, canvas, faces.FaceOptions(multi_face='best'))
  assert reason is None and best.box == found[0].box and best.num_faces == len(found)
  skipped, reason = faces.find_face(models, canvas, faces.FaceOptions(multi_face='skip'))
  assert skipped is None and reason.startswith('several_faces')
  # With the single astronaut the weak false positive does not count as a second face.
  one, reason = faces.find_face(models, astronaut, faces.FaceOptions(multi_face='skip'))
  assert reason is None and one is not None


def test_no_face_policies(models):
  flat = np.full((200, 300, 3), 90, np.uint8)
  flat[:, 150:] = 160
  face, reason = faces.find_face(models, flat)
  assert face is None and reason.startswith('no_face')
  face, reason = faces.find_face(models, flat, faces.FaceOptions(no_face='centre'))
  assert reason is None and face.centre_crop and face.box is None and face.chip.shape == (150, 150, 3)
  # The centred 200x200 square spans x 50..249: its corners map to the chip's corners.
  corners = faces.apply_affine(face.affine, [[50 - 0.5, -0.5], [249.5, 199.5]])
  np.testing.assert_allclose(corners, [[-0.5, -0.5], [149.5, 149.5]])
  assert (face.chip[:, :70] == 90).all() and (face.chip[:, 80:] == 160).all()


def test_cnn_detector_finds_the_astronaut(astronaut):
  cnn = faces.load_models('cnn')
  found = faces.detect(cnn, astronaut, upsample=0)
  hog = faces.detect(faces.load_models('hog'), astronaut, upsample=0)
  assert len(found) == 1 and found[0].score > 0.5
  # Both detectors agree on where the face is (boxes overlap strongly).
  a, b = np.array(found[0].box, float), np.array(hog[0].box, float)
  inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
  union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
  assert inter / union > 0.6


def test_large_photos_are_searched_downscaled(models, astronaut):
  from PIL import Image
  big = np.asarray(Image.fromarray(astronaut).resize((1024, 1024), Image.Resampling.BICUBIC))
  found = faces.detect(models, big, upsample=1, max_side=512)
  ref = faces.detect(models, astronaut, upsample=1)
  np.testing.assert_allclose(found[0].box, 2 * np.array(ref[0].box), atol=3)
  assert found[0].score == pytest.approx(ref[0].score, abs=0.05)
  face, _ = faces.find_face(models, big, faces.FaceOptions(detect_max_side=512))
  # The chip comes from the full-resolution photo and still sits on the template.
  mapped = faces.apply_affine(face.affine, face.landmarks)
  assert np.abs(mapped - faces.template_points()).max() < 2.5
