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
import tempfile
from typing import Sequence

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


@contextlib.contextmanager
def _own_temp_dir():
  """``tempfile`` points at a folder of its own while inside, removed afterwards: TFDS's
  DatasetInfo.initialize_from_bucket makes a ``tempfile.mkdtemp('tfds')`` folder on every
  build (even with GCS off) and never removes it."""
  with tempfile.TemporaryDirectory(prefix='gradejax-tfds-') as tmp:
    before, tempfile.tempdir = tempfile.tempdir, tmp
    try:
      yield
    finally:
      tempfile.tempdir = before


def build(out_dir: str | pathlib.Path, class_names: tuple[str, ...], chip_size: int = 150
          ) -> pathlib.Path:
  """Builds ``out_dir/tfds`` from ``out_dir/manifest.csv``; returns the dataset version folder."""
  out_dir = pathlib.Path(out_dir)
  data_dir = out_dir / 'tfds'
  with _own_temp_dir():  # constructing the builder is what makes TFDS's leftover folder
    builder = GradeChips(prepared_dir=str(out_dir), class_names=tuple(class_names),
                         chip_size=chip_size, data_dir=str(data_dir), file_format='array_record')
    with contextlib.redirect_stdout(io.StringIO()):  # TFDS prints a banner meant for notebooks.
      builder.download_and_prepare(download_dir=str(data_dir / 'downloads'))
  shutil.rmtree(data_dir / 'downloads', ignore_errors=True)  # Nothing is downloaded.
  return pathlib.Path(builder.data_dir)


def dataset_dir(out_dir: str | pathlib.Path) -> pathlib.Path:
  return pathlib.Path(out_dir) / 'tfds' / NAME / VERSION


def _reader(out_dir: str | pathlib.Path):
  path = dataset_dir(out_dir)
  if not (path / 'dataset_info.json').is_file():
    raise FileNotFoundError(f'{path}: no TFDS dataset here; run python -m gradejax.prepare first.')
  return tfds.builder_from_directory(str(path))


def _text(v) -> str:
  return v.decode('utf-8') if isinstance(v, bytes) else str(v)


SMALL_FIELDS = ('label', 'grade', 'id', 'fold', 'source_row')


def load_arrays(out_dir: str | pathlib.Path, rows: slice | Sequence[int] | None = None,
                images: bool | str = True) -> dict:
  """Reads ``out_dir/tfds`` into memory, sorted by workbook row: all of it, or only ``rows``.

  ``rows`` are positions in that sorted order (a slice, e.g. this process's
  ``distributed.split``, or indices); only those records' images are read and decoded. The
  order itself comes from a pass over every record with the image left undecoded (TFDS
  ``SkipDecoding``: the PNG bytes are not decompressed), so a share costs its own images, not
  the whole dataset's. ``images=False`` decodes no image at all (``images`` is then None);
  ``images='lazy'``: an :class:`Images` that decodes the rows it is indexed with, when it is.

  Returns:
    dict with ``images`` uint8 [n, 150, 150, 3], ``label`` int32 [n], ``grade`` float32 [n],
    ``id`` str [n], ``fold`` int32 [n], ``source_row`` int32 [n] for the n rows asked,
    ``rows`` int64 [n] (their positions in the sorted order), ``total`` (records in the
    dataset), ``num_classes`` int and ``class_names`` list[str].
  """
  builder = _reader(out_dir)
  label_feature = builder.info.features['label']
  every = rows is None and images is True  # everything: one pass, images decoded on the way
  source = builder.as_data_source(split=SPLIT, decoders=None if every else {
      'image': tfds.decode.SkipDecoding()})  # else the small fields only: no PNG decoded
  total = len(source)
  index = [source[i] for i in range(total)]
  order = np.argsort([int(r['source_row']) for r in index], kind='stable')
  positions = np.arange(total)[rows] if rows is not None else np.arange(total)
  records = [index[order[p]] for p in positions]
  out = {
      'images': None,
      'label': np.array([r['label'] for r in records], np.int32),
      'grade': np.array([r['grade'] for r in records], np.float32),
      'id': np.array([_text(r['id']) for r in records], dtype=str),
      'fold': np.array([r['fold'] for r in records], np.int32),
      'source_row': np.array([r['source_row'] for r in records], np.int32),
      'rows': positions.astype(np.int64),
      'total': int(total),
      'num_classes': int(label_feature.num_classes),
      'class_names': list(label_feature.names),
  }
  if images == 'lazy':
    out['images'] = Images(builder, order[positions])
  elif every:
    s = tuple(builder.info.features['image'].shape)
    out['images'] = (np.stack([np.asarray(r['image'], np.uint8) for r in records]) if records
                     else np.zeros((0,) + s, np.uint8))
  elif images:
    out['images'] = read_images(out_dir, order[positions], builder)
  return out


class Images:
  """Images of the dataset read on demand: ``images[rows]`` (an int, slice or index array)
  -> uint8 [n, H, W, 3] decoding only those records (each once: decoded rows are kept), so a
  process of a multi-host run that slices its share reads no other image. ``len``,
  ``shape`` and ``dtype`` as the array :func:`load_arrays` would return; ``np.asarray``
  reads all."""

  def __init__(self, builder, records: np.ndarray):
    self._source = builder.as_data_source(split=SPLIT)
    self._records = np.asarray(records)
    self._kept: dict[int, np.ndarray] = {}
    self.shape = (len(self._records),) + tuple(builder.info.features['image'].shape)
    self.dtype = np.dtype(np.uint8)

  def __len__(self) -> int:
    return self.shape[0]

  def _one(self, r: int) -> np.ndarray:
    if r not in self._kept:
      self._kept[r] = np.asarray(self._source[int(r)]['image'], np.uint8)
    return self._kept[r]

  def __getitem__(self, rows):
    picked = np.arange(len(self))[rows]
    if picked.ndim == 0:
      return self._one(self._records[picked])
    got = [self._one(self._records[i]) for i in picked]
    return np.stack(got) if got else np.zeros((0,) + self.shape[1:], np.uint8)

  def __array__(self, dtype=None, copy=None):
    return np.asarray(self[:], dtype)


def read_images(out_dir: str | pathlib.Path, records: Sequence[int], builder=None) -> np.ndarray:
  """uint8 [n, H, W, 3]: the decoded images of these record indices (file order), only."""
  builder = builder or _reader(out_dir)
  s = tuple(builder.info.features['image'].shape)
  source = builder.as_data_source(split=SPLIT)
  got = [np.asarray(source[int(i)]['image'], np.uint8) for i in records]
  return np.stack(got) if got else np.zeros((0,) + s, np.uint8)


def load_share(out_dir: str | pathlib.Path, limit: int | None = None, images: bool = True
               ) -> dict:
  """This process's share (``distributed.split``, grain's ShardByJaxProcess split) of the
  first ``limit`` rows (all by default) in :func:`load_arrays`' order: one process reads
  everything; in a multi-host run each reads only its own images. ``rows``/``total`` say
  which share it is (``total`` is the number of rows split, ``min(limit, records)``)."""
  from gradejax import distributed
  n = count(out_dir)
  n = n if limit is None else min(n, int(limit))
  out = load_arrays(out_dir, distributed.split(n), images=images)
  out['total'] = n
  return out


def count(out_dir: str | pathlib.Path) -> int:
  """Records in the dataset (from its metadata; nothing read)."""
  return int(_reader(out_dir).info.splits[SPLIT].num_examples)
