"""The prepared chips as a TFDS dataset (array_record), built and read without TensorFlow.

``build(out_dir)`` turns ``OUT/manifest.csv`` + ``OUT/chips`` into ``OUT/tfds/grade_chips/1.0.0``
with one split, ``train``, holding every used example; cross-validation uses the ``fold``
feature. Images are handed to TFDS as PNG bytes (encoding numpy arrays would need TensorFlow),
and shuffling is disabled so records keep manifest order.

``load_arrays(out_dir)`` reads it back with ``as_data_source`` (random access, no TensorFlow).
"""
from __future__ import annotations

import contextlib
import io
import pathlib
import shutil

import numpy as np
import tensorflow_datasets as tfds

from gradejax.data import manifest

NAME = 'grade_chips'
VERSION = '1.0.0'
SPLIT = 'train'


class GradeChips(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Aligned face chips with their grade class; built from a ``prepare`` output folder.

  Not registered with TFDS: readers find the dataset from its files
  (``tfds.data_source('grade_chips', data_dir=OUT/'tfds')``), never by running this builder.
  """

  VERSION = tfds.core.Version(VERSION)
  RELEASE_NOTES = {str(VERSION): 'Chips, labels and folds from gradejax.prepare.'}

  def __init__(self, *, prepared_dir: str, class_names: tuple[str, ...], chip_size: int = 150,
               **kwargs):
    self._prepared_dir = pathlib.Path(prepared_dir)
    self._class_names = tuple(class_names)
    self._chip_size = chip_size
    super().__init__(**kwargs)

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    # No checksums file to find; TFDS's lookup of one needs the importlib_resources package
    # for builders defined inside a package, which is not installed.
    return None

  def _info(self) -> tfds.core.DatasetInfo:
    s = self._chip_size
    return tfds.core.DatasetInfo(
        builder=self,
        description='Aligned face chips (dlib 5-point, 150x150) and grade classes.',
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(s, s, 3), encoding_format='png'),
            'label': tfds.features.ClassLabel(names=list(self._class_names)),
            'grade': tfds.features.Scalar(dtype=np.float32),
            'id': tfds.features.Text(),
            'fold': tfds.features.Scalar(dtype=np.int32),
            'source_row': tfds.features.Scalar(dtype=np.int32),
        }),
        supervised_keys=('image', 'label'),
        disable_shuffling=True,  # Keep manifest order: record i is the i-th used row.
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    return {SPLIT: self._generate_examples()}

  def _generate_examples(self):
    for e in manifest.read(self._prepared_dir / 'manifest.csv'):
      if e.status != 'used':
        continue
      yield e.id, {
          'image': (self._prepared_dir / e.file).read_bytes(),
          'label': e.label,
          'grade': np.float32(e.grade),
          'id': e.id,
          'fold': np.int32(e.fold),
          'source_row': np.int32(e.source_row),
      }


def build(out_dir: str | pathlib.Path, class_names: tuple[str, ...], chip_size: int = 150
          ) -> pathlib.Path:
  """Builds ``out_dir/tfds`` from ``out_dir/manifest.csv``; returns the dataset version folder."""
  out_dir = pathlib.Path(out_dir)
  data_dir = out_dir / 'tfds'
  builder = GradeChips(prepared_dir=str(out_dir), class_names=tuple(class_names),
                       chip_size=chip_size, data_dir=str(data_dir), file_format='array_record')
  with contextlib.redirect_stdout(io.StringIO()):  # TFDS prints a banner meant for notebooks.
    builder.download_and_prepare(download_dir=str(data_dir / 'downloads'))
  shutil.rmtree(data_dir / 'downloads', ignore_errors=True)  # Nothing is downloaded.
  return pathlib.Path(builder.data_dir)


def dataset_dir(out_dir: str | pathlib.Path) -> pathlib.Path:
  return pathlib.Path(out_dir) / 'tfds' / NAME / VERSION


def load_arrays(out_dir: str | pathlib.Path) -> dict:
  """Reads ``out_dir/tfds`` into memory, sorted by workbook row.

  Returns:
    dict with ``images`` uint8 [N, 150, 150, 3], ``label`` int32 [N], ``grade`` float32 [N],
    ``id`` str [N], ``fold`` int32 [N], ``source_row`` int32 [N], ``num_classes`` int and
    ``class_names`` list[str].
  """
  path = dataset_dir(out_dir)
  if not (path / 'dataset_info.json').is_file():
    raise FileNotFoundError(f'{path}: no TFDS dataset here; run python -m gradejax.prepare first.')
  builder = tfds.builder_from_directory(str(path))
  source = builder.as_data_source(split=SPLIT)
  records = [source[i] for i in range(len(source))]
  label_feature = builder.info.features['label']
  s = builder.info.features['image'].shape
  order = np.argsort([int(r['source_row']) for r in records], kind='stable')
  records = [records[i] for i in order]

  def text(v) -> str:
    return v.decode('utf-8') if isinstance(v, bytes) else str(v)

  return {
      'images': (np.stack([np.asarray(r['image'], np.uint8) for r in records])
                 if records else np.zeros((0,) + tuple(s), np.uint8)),
      'label': np.array([r['label'] for r in records], np.int32),
      'grade': np.array([r['grade'] for r in records], np.float32),
      'id': np.array([text(r['id']) for r in records], dtype=str),
      'fold': np.array([r['fold'] for r in records], np.int32),
      'source_row': np.array([r['source_row'] for r in records], np.int32),
      'num_classes': int(label_feature.num_classes),
      'class_names': list(label_feature.names),
  }
