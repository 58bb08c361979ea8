"""A training run's work directory: its config, its checkpoints, its trained model.

``WORKDIR/config.json`` (the config plus what the data decided: num_classes, class_names,
input_means, feature_dim) and ``WORKDIR/checkpoints`` (orbax: trainable params, optimiser state,
step, the head's ``norm`` collection) are written by :mod:`gradejax.training.train` and read here by
everything downstream (evaluate, visualize, featurevis), so none of them imports the trainer.
"""
from __future__ import annotations

import json
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
import orbax.checkpoint as ocp
from flax.training import train_state

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
  d = config.to_dict()
  d.update(extra)
  (pathlib.Path(workdir) / 'config.json').write_text(json.dumps(d, indent=2, default=list))


def load_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
  """The run's config (``WORKDIR/config.json``) including num_classes, class_names, ..."""
  file = pathlib.Path(workdir) / 'config.json'
  if not file.is_file():
    raise FileNotFoundError(f'{file}: not a training work directory; run '
                            f'`python -m gradejax.train --config configs/grades.py --workdir '
                            f'{workdir}` first.')
  return ml_collections.ConfigDict(json.loads(file.read_text()))


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
  restored = mngr.restore(mngr.latest_step(), args=ocp.args.StandardRestore(saved(state, norm)))
  mngr.close()
  trained = restored['params']
  frozen = ext_vars['params']
  if config.unfreeze:
    # The unfrozen layers come from the checkpoint, everything else from the dlib weights.
    _, frozen = extractor.freeze_partition(frozen, (config.unfreeze,))
  ext = extractor.merge(trained.get('extractor', {}), frozen)
  variables = {'params': {'extractor': ext, 'head': trained['head']}, 'norm': restored['norm']}
  return module, variables, config
