"""Face detection and alignment with dlib: photo -> aligned 150x150 chip + its affine map.

The chip is exactly what ``dlib.get_face_chip`` gives (5-point landmarks,
``get_face_chip_details`` + ``extract_image_chip``), so it matches what dlib's face ResNet was
trained on. The 2x3 affine from photo pixels to chip pixels is rebuilt from the chip details
(``rect``, ``angle``) the way dlib's ``get_mapping_to_chip`` does, so that boxes drawn on the
photo (e.g. the demo's cue) can be carried into the chip.

Coordinates are dlib's: ``(x, y)`` in pixels, pixel centres on integers.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import dlib
import numpy as np
from PIL import Image

from gradejax import paths

# dlib's 5-point template (get_face_chip_details) in the unit square, before padding:
# right eye outer, right eye inner, left eye outer, left eye inner, nose base.
TEMPLATE_5 = np.array([
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
])


@dataclasses.dataclass(frozen=True)
class FaceOptions:
  detector: str = 'hog'  # 'hog' (frontal HOG + SVM) or 'cnn' (mmod)
  upsample: int = 1  # detector upsampling; 1 finds faces down to ~40 px
  chip_size: int = 150
  padding: float = 0.25
  no_face: str = 'skip'  # 'skip' or 'centre' (centre crop, marked centre_crop=1)
  multi_face: str = 'best'  # 'best' (highest score), 'largest', or 'skip'
  # Detections below this score do not count as "another face" for multi_face='skip'; HOG
  # scores weak false positives around 0-0.3 (e.g. one at 0.12 on skimage's astronaut).
  multi_face_min_score: float = 0.5
  # Photos whose longer side exceeds this are searched at this size (HOG time grows with
  # pixels); landmarks and the chip still use the full-resolution photo.
  detect_max_side: int = 1024


class Models(NamedTuple):
  kind: str
  detector: object
  predictor: object


class Detection(NamedTuple):
  box: tuple[float, float, float, float]  # x0, y0, x1, y1 in photo pixels (inclusive corners)
  score: float


@dataclasses.dataclass(frozen=True)
class Face:
  """An aligned chip. ``affine`` float64 [2, 3] maps photo (x, y, 1) to chip (x, y)."""
  chip: np.ndarray  # uint8 [S, S, 3]
  affine: np.ndarray
  box: tuple[float, float, float, float] | None
  score: float | None
  landmarks: np.ndarray | None  # float64 [5, 2] photo pixels
  centre_crop: bool
  num_faces: int


def template_points(chip_size: int = 150, padding: float = 0.25) -> np.ndarray:
  """Where dlib puts the 5 landmarks in the chip: float64 [5, 2] chip pixels."""
  return (padding + TEMPLATE_5) / (2 * padding + 1) * chip_size


def load_models(kind: str = 'hog') -> Models:
  """Loads the detector (``'hog'`` or ``'cnn'``) and the 5-point shape predictor."""
  if kind == 'hog':
    detector = dlib.get_frontal_face_detector()
  elif kind == 'cnn':
    detector = dlib.cnn_face_detection_model_v1(str(paths.dlib_model(paths.MMOD_DETECTOR)))
  else:
    raise ValueError(f'unknown detector {kind!r}; use "hog" or "cnn"')
  predictor = dlib.shape_predictor(str(paths.dlib_model(paths.SHAPE_PREDICTOR_5)))
  return Models(kind, detector, predictor)


def detect(models: Models, image: np.ndarray, upsample: int = 1, max_side: int | None = None
           ) -> list[Detection]:
  """All detections in ``image`` (uint8 [H, W, 3]), best score first.

  With ``max_side``, a larger photo is searched downscaled and the boxes are scaled back to
  photo pixels.
  """
  h, w = image.shape[:2]
  if max_side and max(h, w) > max_side:
    k = max_side / max(h, w)
    small = Image.fromarray(image).resize((max(1, round(w * k)), max(1, round(h * k))),
                                          Image.Resampling.BILINEAR)
    found = detect(models, np.asarray(small), upsample)
    return [Detection(tuple(v / k for v in d.box), d.score) for d in found]
  image = np.ascontiguousarray(image)
  if models.kind == 'hog':
    rects, scores, _ = models.detector.run(image, upsample, 0.0)
    found = [Detection((r.left(), r.top(), r.right(), r.bottom()), float(s))
             for r, s in zip(rects, scores)]
  else:
    found = [Detection((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()),
                       float(d.confidence)) for d in models.detector(image, upsample)]
  return sorted(found, key=lambda d: -d.score)


def chip_affine(details) -> np.ndarray:
  """dlib ``chip_details`` -> float64 [2, 3] affine from photo pixels to chip pixels.

  The chip's corners (0, 0), (cols-1, 0), (cols-1, rows-1) come from the rect's corners
  rotated by ``angle`` about the rect's centre; three point pairs fix the affine.
  """
  r = details.rect
  x0, y0, x1, y1 = r.left(), r.top(), r.right(), r.bottom()
  centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
  c, s = np.cos(details.angle), np.sin(details.angle)
  rot = np.array([[c, -s], [s, c]])
  src = np.array([[x0, y0], [x1, y0], [x1, y1]], dtype=np.float64)
  src = (src - centre) @ rot.T + centre
  dst = np.array([[0, 0], [details.cols - 1, 0], [details.cols - 1, details.rows - 1]],
                 dtype=np.float64)
  a = np.concatenate([src, np.ones((3, 1))], axis=1)  # [3, 3]
  return np.linalg.solve(a, dst).T  # [2, 3]


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
  """float [N, 2] photo points -> float [N, 2] chip points."""
  points = np.asarray(points, dtype=np.float64)
  return points @ affine[:, :2].T + affine[:, 2]


def align(models: Models, image: np.ndarray, box: tuple[float, float, float, float],
          chip_size: int = 150, padding: float = 0.25
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Landmarks + aligned chip for one detection box.

  Returns:
    chip uint8 [S, S, 3], affine float64 [2, 3] (photo -> chip), landmarks float64 [5, 2].
  """
  image = np.ascontiguousarray(image)
  rect = dlib.rectangle(*(int(round(v)) for v in box))
  shape = models.predictor(image, rect)
  details = dlib.get_face_chip_details(shape, chip_size, padding)
  chip = dlib.extract_image_chip(image, details)
  landmarks = np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)],
                       dtype=np.float64)
  return np.asarray(chip, dtype=np.uint8), chip_affine(details), landmarks


def centre_crop(image: np.ndarray, chip_size: int = 150) -> tuple[np.ndarray, np.ndarray]:
  """Largest centred square resized to ``chip_size``; returns (chip, affine photo -> chip)."""
  h, w = image.shape[:2]
  side = min(h, w)
  x0, y0 = (w - side) // 2, (h - side) // 2
  crop = Image.fromarray(image[y0:y0 + side, x0:x0 + side])
  chip = np.asarray(crop.resize((chip_size, chip_size), Image.Resampling.BILINEAR), np.uint8)
  k = chip_size / side  # pixel centres: x' + 0.5 = k (x - x0 + 0.5)
  affine = np.array([[k, 0.0, k * (0.5 - x0) - 0.5], [0.0, k, k * (0.5 - y0) - 0.5]])
  return chip, affine


def find_face(models: Models, image: np.ndarray, options: FaceOptions = FaceOptions()
              ) -> tuple[Face | None, str | None]:
  """Applies the detection policies to one photo: ``(Face, None)`` or ``(None, reason)``."""
  found = detect(models, image, options.upsample, options.detect_max_side)
  if not found:
    if options.no_face == 'centre':
      chip, affine = centre_crop(image, options.chip_size)
      return Face(chip, affine, None, None, None, True, 0), None
    return None, 'no_face: the detector found no face in the photo'
  strong = [d for d in found if d.score >= options.multi_face_min_score]
  if options.multi_face == 'skip' and len(strong) > 1:
    return None, f'several_faces: {len(strong)} faces found in the photo'
  if options.multi_face == 'largest':
    pick = max(found, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
  else:
    pick = found[0]
  chip, affine, landmarks = align(models, image, pick.box, options.chip_size, options.padding)
  return Face(chip, affine, pick.box, pick.score, landmarks, False, len(found)), None
