"""A training run's work directory: its config, its checkpoints, its trained model.

``WORKDIR/config.json`` (the config plus what the data decided: num_classes, class_names,
input_means, feature_dim) and ``WORKDIR/checkpoints`` (orbax: trainable params, optimiser state,
step, the head's ``norm`` collection) are written by :mod:`gradejax.training.train` and read here by
everything downstream (evaluate, visualize, featurevis), so none of them imports the trainer.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import shutil
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
import orbax.checkpoint as ocp
from flax.training import train_state

from gradejax import errors
from gradejax.nets import classifier, extractor

Array = jax.Array


class TrainState(train_state.TrainState):
  """Only the trainable params (the head, plus ``extractor/<unfreeze>``) and their optimiser."""


def make_model(config, num_classes: int, input_means=None) -> classifier.GradeClassifier:
  kw = {} if input_means is None else {'input_means': tuple(input_means)}
  return classifier.GradeClassifier(num_classes=num_classes, widths=tuple(config.head.widths),
                                    dropout=float(config.head.dropout),
                                    head_input=config.head_input, **kw)


def learning_rate_fn(config) -> optax.Schedule:
  if config.schedule == 'cosine':
    return optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, config.warmup_steps,
                                              max(config.steps, config.warmup_steps + 1))
  if config.schedule == 'constant':
    return optax.constant_schedule(config.learning_rate)
  raise ValueError(f'config.schedule must be cosine or constant, got {config.schedule!r}')


def make_optimizer(config) -> optax.GradientTransformation:
  """adamw or sgd (momentum 0.9, weight decay added to the gradient) at
  :func:`learning_rate_fn`; with ``config.unfreeze`` the unfrozen extractor layers' updates are
  scaled by ``config.unfreeze_lr_scale`` (a per-parameter learning-rate multiplier, as
  big_vision's ``lr_mults``).

  Why the multiplier: the head standardises its input by the features' std over the training
  photos (about 0.02 on the demo data, 0.004 on the tests' near-identical photos), so the
  gradient that reaches an unfrozen layer is about 1/std times larger than the head's
  (tests' data: global norm 764 for level2 against 1.8 for the head, 1.7 without the
  standardisation) and one step at the head's learning rate wrecks the layer.
  """
  lr = learning_rate_fn(config)
  if config.optimizer == 'adam':
    tx = optax.adamw(lr, weight_decay=config.weight_decay)
  elif config.optimizer == 'sgd':
    tx = optax.chain(optax.add_decayed_weights(config.weight_decay), optax.sgd(lr, 0.9))
  else:
    raise ValueError(f'config.optimizer must be adam or sgd, got {config.optimizer!r}')
  # A config.json written before the field existed reads as 1.0: its checkpoints keep the
  # optimiser-state layout they were saved with.
  scale = float(config.get('unfreeze_lr_scale', 1.0))
  if config.unfreeze and scale != 1.0:
    tx = optax.chain(tx, optax.masked(optax.scale(scale),
                                      lambda params: {k: k == 'extractor' for k in params}))
  return tx


def create_train_state(config, module: classifier.GradeClassifier, dim: int, key: Array,
                       frozen_extractor: dict | None = None) -> TrainState:
  """Head params from ``key`` (+ ``extractor/<unfreeze>`` from the dlib weights)."""
  head_vars = module.init(key, jnp.zeros((1, dim)), method='classify_features')
  params = {'head': head_vars['params']['head']}
  if config.unfreeze:
    trainable, _ = extractor.freeze_partition(frozen_extractor, (config.unfreeze,))
    params['extractor'] = trainable
  return TrainState.create(apply_fn=module.apply, params=params, tx=make_optimizer(config))


def checkpoint_manager(workdir: pathlib.Path) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      (pathlib.Path(workdir) / 'checkpoints').absolute(),
      options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))


def saved(state: TrainState, norm) -> dict:
  """The checkpointed pytree (also the restore target's structure)."""
  return {'params': state.params, 'opt_state': state.opt_state, 'step': state.step,
          'norm': norm}


def write_config(config, workdir: pathlib.Path, extra: dict) -> None:
  """``WORKDIR/config.json`` (the config plus ``extra``), replaced atomically."""
  d = config.to_dict()
  d.update(extra)
  errors.write_atomic(pathlib.Path(workdir) / 'config.json',
                      json.dumps(d, indent=2, default=list))


# A run's identity is its config.json minus these fields: they change nothing a checkpoint
# holds (evaluation, logging, checkpoint cadence, the test hook), so a rerun may change them
# and the run continues (the evaluation then uses the new values). Every other field trained
# the checkpoint, and a rerun that changes one is refused (check_rerun). ``steps`` may change
# when ``schedule='constant'`` on both sides (no step of the schedule depends on it) and the
# checkpoint is not past the new value: step t's batch depends on t only, so the run then
# equals a clean run of the new length.
RERUN_SAFE = ('evaluate', 'log_images', 'log_every', 'save_every', 'stop_after_steps',
              'cv_folds', 'cv_repeats', 'cv_head', 'metric', 'num_permutations',
              'permutation_chunk', 'bootstrap', 'alpha', 'baseline_ridge', 'blur_sigma', 'power',
              'ledger', 'min_gain')
DERIVED = ('num_classes', 'class_names', 'input_means', 'feature_dim', 'data_manifest_sha256')


def _flat(d: dict, prefix: str = '') -> dict[str, Any]:
  out: dict[str, Any] = {}
  for k, v in d.items():
    if isinstance(v, dict) and v:
      out.update(_flat(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def _plain(v):
  return json.loads(json.dumps(v, default=list))  # tuples and lists alike, as config.json


def changed_fields(saved: dict, config, trained_step: int = 0) -> list[tuple[str, Any, Any]]:
  """``(field, saved value, new value)`` of every training field (not :data:`RERUN_SAFE`,
  not :data:`DERIVED`) where ``config`` differs from the ``saved`` config.json dict; another
  ``steps`` with a constant schedule on both sides, not below ``trained_step`` (the latest
  checkpoint's), is not a change."""
  old = _flat(_plain(saved))
  new = _flat(_plain(config.to_dict() if hasattr(config, 'to_dict') else dict(config)))
  out = []
  for key in sorted(set(old) | set(new)):
    top = key.split('.')[0]
    if top in RERUN_SAFE or top in DERIVED:
      continue
    a, b = old.get(key, '<unset>'), new.get(key, '<unset>')
    if a == b:
      continue
    if (key == 'steps' and isinstance(b, int) and b >= trained_step
        and old.get('schedule') == new.get('schedule') == 'constant'):
      continue
    out.append((key, a, b))
  return out


def manifest_sha256(data_dir: str | pathlib.Path) -> str:
  """sha256 of the prepared data's manifest.csv ('' if absent): a re-prepared dataset (other
  rows, grades, labels) changes it."""
  path = pathlib.Path(data_dir).expanduser() / 'manifest.csv'
  return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else ''


def prepare_workdir(workdir: str | pathlib.Path, restart: bool = False) -> pathlib.Path:
  """The absolute work directory, created and known writable before any work; with
  ``restart``, an existing run is moved aside to ``WORKDIR.prev-<UTC time>`` first (its
  cached features are kept: they depend on the data and the config only)."""
  workdir = pathlib.Path(workdir).expanduser().absolute()
  if workdir.exists() and not workdir.is_dir():
    raise errors.UserError(f'--workdir {workdir} is a file, not a folder: pass a folder path '
                           f'(a new one is created).')
  if restart and workdir.is_dir() and any(workdir.iterdir()):
    aside = workdir.with_name(f'{workdir.name}.prev-{time.strftime("%Y%m%d-%H%M%S", time.gmtime())}')
    workdir.rename(aside)
    workdir.mkdir()
    if (aside / 'features').is_dir():
      shutil.copytree(aside / 'features', workdir / 'features')
    logging.warning('--restart: the previous run is kept in %s; training %s from scratch.',
                    aside, workdir)
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / f'.write-test-{os.getpid()}'
    probe.write_bytes(b'')
    probe.unlink()
  except OSError as e:
    line = errors.describe(e, str(workdir))
    raise errors.UserError(f'--workdir {workdir}: {line or e}') from e
  return workdir


def check_rerun(config, workdir: pathlib.Path) -> list[str]:
  """Refuses (:class:`errors.RunConflict`, one line) a rerun whose config differs from the one
  that trained ``workdir``'s checkpoints in a training field; returns the names of the
  :data:`RERUN_SAFE` fields that changed (the rerun continues with them)."""
  workdir = pathlib.Path(workdir)
  file = workdir / 'config.json'
  steps = [int(p.name) for p in (workdir / 'checkpoints').glob('[0-9]*') if p.name.isdigit()]
  if not steps:
    return []  # nothing trained yet: any config may start it
  ways = (f'rerun with the config it was trained with, pass a new --workdir, or add --restart '
          f'to train {workdir} again from scratch (the old run is moved to '
          f'{workdir.name}.prev-<time>)')
  if not file.is_file():
    raise errors.RunConflict(f'{workdir} holds checkpoints but no config.json, so what trained '
                             f'them is unknown: {ways}.')
  saved = json.loads(file.read_text())
  changed = changed_fields(saved, config, max(steps))
  data_sha = saved.get('data_manifest_sha256')
  if data_sha and data_sha != manifest_sha256(config.data_dir):
    changed.append(('prepared data (manifest.csv)', data_sha, manifest_sha256(config.data_dir)))
  if changed:
    listed = ', '.join(f'{k} {a!r} -> {b!r}' for k, a, b in changed)
    raise errors.RunConflict(f'{workdir} was trained with another config ({listed}): {ways}.')
  old, new = _flat(_plain(saved)), _flat(_plain(config.to_dict()))
  return sorted({k for k in set(old) | set(new) if k.split('.')[0] in RERUN_SAFE
                 and old.get(k) != new.get(k)})


def load_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
  """The run's config (``WORKDIR/config.json``) including num_classes, class_names, ..."""
  file = pathlib.Path(workdir) / 'config.json'
  if not file.is_file():
    raise FileNotFoundError(f'{file}: not a training work directory; run '
                            f'`python -m gradejax.train --config configs/grades.py --workdir '
                            f'{workdir}` first.')
  return ml_collections.ConfigDict(json.loads(file.read_text()))


def restore(mngr: ocp.CheckpointManager, target: dict, workdir: pathlib.Path) -> dict:
  """The latest checkpoint restored into ``target``'s structure; a checkpoint of another
  structure (head widths, optimizer, unfrozen layers than config.json says) is a
  :class:`errors.RunConflict` naming the run instead of orbax's advice."""
  try:
    return mngr.restore(mngr.latest_step(), args=ocp.args.StandardRestore(target))
  except (ValueError, KeyError, TypeError) as e:
    raise errors.RunConflict(
        f'The checkpoint in {pathlib.Path(workdir) / "checkpoints"} (step {mngr.latest_step()}) '
        f'does not fit {pathlib.Path(workdir) / "config.json"}: the config.json was changed after '
        f'training (head widths, optimizer or unfreeze differ from what trained it); restore '
        f'the config.json that trained it, or retrain the run with --restart.') from e


def load_trained(workdir: str | pathlib.Path) -> tuple[classifier.GradeClassifier, dict, Any]:
  """``(module, variables, config)`` of the run's latest checkpoint.

  ``module.apply(variables, images [B,150,150,3] in [0,1])`` -> logits ``[B, num_classes]``;
  the module follows gradejax.nets (relu injectable, taps ``extractor/...``, ``head/hidden0``,
  ``logits``).
  """
  workdir = pathlib.Path(workdir).absolute()
  config = load_config(workdir)
  ext_module, ext_vars = extractor.load_face_resnet()
  module = make_model(config, config.num_classes, config.input_means)
  dim = int(config.feature_dim)
  state = create_train_state(config, module, dim, jax.random.key(0), ext_vars['params'])
  norm = {'head': {'mean': jnp.zeros(dim), 'std': jnp.ones(dim)}}
  mngr = checkpoint_manager(workdir)
  if mngr.latest_step() is None:
    raise FileNotFoundError(f'{workdir / "checkpoints"}: no checkpoint; train first.')
  restored = restore(mngr, saved(state, norm), workdir)
  mngr.close()
  trained = restored['params']
  frozen = ext_vars['params']
  if config.unfreeze:
    # The unfrozen layers come from the checkpoint, everything else from the dlib weights.
    _, frozen = extractor.freeze_partition(frozen, (config.unfreeze,))
  ext = extractor.merge(trained.get('extractor', {}), frozen)
  variables = {'params': {'extractor': ext, 'head': trained['head']}, 'norm': restored['norm']}
  return module, variables, config
