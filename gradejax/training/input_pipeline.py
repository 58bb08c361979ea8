"""Data for training and evaluation: the prepared arrays, labels, folds, cached features.

The extractor is frozen on the fast path, so every chip is embedded once, plus
``config.num_views`` augmented views, and the head trains on those cached features
(``WORKDIR/features/<hash>.npz``; the hash covers the pixels, the extractor weights and every
config field that changes the features).
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradejax import batching, imageops
from gradejax.training import augment
from gradejax.data import dataset, labels
from gradejax.nets import extractor, classifier

CACHE_FORMAT = 2  # 2: augmentation resamples through imageops.affine_resample


def load_dataset(config) -> dict[str, Any]:
  """``dataset.load_arrays(config.data_dir)`` with the labels ``prepare`` decided.

  prepare owns the labelling (docs/CONTRACTS.md): its classes name the chip folders, the TFDS
  class names and the folds it stratified. ``config.pivot`` None takes them as they are; a
  pivot that gives exactly the same labels (e.g. 'median' on data prepared at its median) is
  accepted; any other raises ValueError naming both pivots. ``data['labelling']`` says which
  rule made the labels (summary.json's, e.g. 'pivot=median (4.75)').

  Raises FileNotFoundError naming the folder and the command that makes it.
  """
  path = pathlib.Path(config.data_dir).expanduser()
  if not (dataset.dataset_dir(path) / 'dataset_info.json').is_file():
    raise FileNotFoundError(
        f'No prepared dataset at {path.resolve()} (expected {dataset.dataset_dir(path)}). Run '
        f'`python -m gradejax.prepare --workbook <school.xlsx> --out {path}` first, or set '
        f'--config.data_dir to the folder prepare wrote.')
  data = dataset.load_arrays(path)
  if len(data['label']) == 0:
    raise ValueError(f'{path}: the prepared dataset holds no used rows; see its manifest.csv.')
  summary = read_summary(path)
  data['labelling'] = check_labels(config, data, path, summary)
  if summary.get('skipped_grades'):  # are the skipped rows a random part of the cohort?
    data['selection'] = dict(summary['skipped_grades'], rows_read=summary.get('rows_read'))
  counts = np.bincount(data['label'], minlength=data['num_classes'])
  if np.sum(counts > 0) < 2:
    raise ValueError(f'{path}: every used row is in one class ({data["class_names"]}, counts '
                     f'{counts.tolist()}); choose another pivot.')
  return data


def read_summary(path: pathlib.Path) -> dict:
  """prepare's summary.json in ``path`` ({} if there is none)."""
  file = pathlib.Path(path) / 'summary.json'
  return json.loads(file.read_text(encoding='utf-8')) if file.is_file() else {}


def check_labels(config, data: dict, path: pathlib.Path, summary: dict | None = None) -> str:
  """The rule that made ``data['label']`` (from summary.json), after checking that
  ``config.pivot`` (None: the data's) asks for the same labels; ValueError naming both
  pivots otherwise (labels are decided once, by prepare). ``summary``: the folder's
  summary.json, if already read."""
  summary = read_summary(path) if summary is None else summary
  rule = summary.get('labelling', 'as prepared')
  thresholds = summary.get('thresholds') or []
  shown = rule + (f' ({", ".join(labels.fmt_grade(t) for t in thresholds)})'
                  if 'median' in rule or 'bins' in rule else '')
  if config.get('pivot') is None:
    return shown
  asked = labels.make_labelling(data['grade'], pivot=config.pivot)
  same = np.array_equal(labels.assign(data['grade'], asked), data['label'])
  if not same or data['num_classes'] != asked.num_classes:
    raise ValueError(
        f'config.pivot={config.pivot!r} ({asked.rule}, threshold '
        f'{labels.fmt_grade(asked.thresholds[0])}) differs from the labels {path} was prepared '
        f'with ({shown}): labels are decided once, by prepare; re-run prepare with '
        f'--pivot {config.pivot} or set --config.pivot=None.')
  return shown


def class_weights(label: np.ndarray, mask: np.ndarray, num_classes: int) -> np.ndarray:
  """float32 [N] per-example weight ``n / (C * n_class)`` over ``mask``ed examples, else 0."""
  label, mask = jnp.asarray(label), jnp.asarray(mask, jnp.float32)
  counts = jax.nn.one_hot(label, num_classes).T @ mask
  present = jnp.sum(counts > 0)
  w = jnp.sum(mask) / (present * jnp.maximum(counts, 1.0))
  return w[label] * mask


def augment_params(config) -> augment.AugmentParams:
  a = config.augment
  return augment.AugmentParams(flip=bool(a.flip), max_rotation_deg=float(a.max_rotation_deg),
                               max_scale=float(a.max_scale),
                               max_translation=float(a.max_translation),
                               brightness=float(a.brightness), contrast=float(a.contrast),
                               saturation=float(a.saturation))


# Chips per call of the feature function (training's cache and the evaluation's re-test).
FEATURE_BATCH = 32


def make_feature_fn(head_input: str, input_means, p: augment.AugmentParams):
  """jitted ``(params, images uint8/float [B,...], views int [B], index int [B], key)`` ->
  head-input features ``[B, D]`` of those views. The same function object for the same
  arguments (the training features and the evaluation's re-test share its compiled programs)."""
  return _feature_fn(head_input, tuple(float(v) for v in np.ravel(input_means)), p)


@functools.lru_cache(maxsize=8)
def _feature_fn(head_input: str, input_means: tuple[float, ...], p: augment.AugmentParams):
  trunk = classifier.FaceTrunk(input_means=input_means, head_input=head_input)

  @jax.jit
  def fn(params, images, view, index, key):
    x = augment.views(key, to_float_jnp(images), view, index, p)
    return trunk.apply({'params': params}, x)

  return fn


def to_float_jnp(images):
  return imageops.to_unit_float(images)


def feature_key(config, data: dict, weights_id: str) -> str:
  h = hashlib.sha256()
  h.update(np.ascontiguousarray(data['images']).tobytes())
  h.update(json.dumps({'ids': [str(i) for i in data['id']], 'weights': weights_id,
                       'head_input': config.head_input, 'num_views': config.num_views,
                       'augment': config.augment.to_dict(), 'seed': config.seed,
                       'format': CACHE_FORMAT}, sort_keys=True).encode())
  return h.hexdigest()[:16]


def cached_features(config, data: dict, workdir: str | pathlib.Path, module, variables,
                    weights_id: str = '', batch_size: int = FEATURE_BATCH) -> np.ndarray:
  """float32 [1 + num_views, N, D]: view 0 the chips as they are, then augmented views.

  Read from ``WORKDIR/features/<hash>.npz`` when present, else computed and written there.
  """
  file = (pathlib.Path(workdir) / 'features' / f'{feature_key(config, data, weights_id)}.npz')
  if file.is_file():
    with np.load(file) as z:
      return z['features']
  t0 = time.time()
  fn = make_feature_fn(config.head_input, module.input_means, augment_params(config))
  key = view_key(config.seed)
  images = data['images']
  n = len(images)
  out = [batching.map_batches(
      lambda idx: fn(variables['params'], images[idx], np.full(len(idx), v, np.int32), idx, key),
      np.arange(n, dtype=np.int32), batch_size) for v in range(1 + config.num_views)]
  feats = np.stack(out).astype(np.float32)
  file.parent.mkdir(parents=True, exist_ok=True)
  tmp = file.with_suffix('.tmp.npz')
  np.savez(tmp, features=feats)
  tmp.replace(file)
  logging.info('Embedded %d chips x %d views in %.1f s -> %s', n, 1 + config.num_views,
               time.time() - t0, file)
  return feats


def view_key(seed: int) -> jax.Array:
  """The key all augmented views derive from (fixed per seed, shared by cache and slow path)."""
  return jax.random.fold_in(jax.random.key(seed), 0x5EED)


def weights_id(config) -> str:
  """Identifies the extractor weights for the feature hash (the .dat's sha256 file name)."""
  try:
    from gradejax import paths
    return extractor.cache_path(paths.dlib_model(paths.FACE_RECOGNITION)).stem
  except Exception:  # pragma: no cover - no model file: the hash just omits it
    return ''
