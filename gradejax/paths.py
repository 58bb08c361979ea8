"""Where the dlib model files live.

They ship in the PyPI sdist ``face_recognition_models==0.3.0``. Its ``__init__`` imports
``pkg_resources`` (gone from new setuptools), so the folder is located with importlib without
importing the package.
"""
from __future__ import annotations

import importlib.util
import pathlib

FACE_RECOGNITION = 'dlib_face_recognition_resnet_model_v1.dat'
SHAPE_PREDICTOR_5 = 'shape_predictor_5_face_landmarks.dat'
MMOD_DETECTOR = 'mmod_human_face_detector.dat'


def models_dir() -> pathlib.Path:
  spec = importlib.util.find_spec('face_recognition_models')
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        'The dlib model files come from the package face_recognition_models==0.3.0, which is not '
        'installed. Run scripts/setup.sh (or pip install -r requirements.txt).')
  return pathlib.Path(list(spec.submodule_search_locations)[0]) / 'models'


def dlib_model(name: str) -> pathlib.Path:
  path = models_dir() / name
  if not path.is_file():
    raise FileNotFoundError(f'{path}: dlib model file missing; reinstall face_recognition_models==0.3.0.')
  return path
