r"""Trains the grade classifier's head on the frozen face ResNet; optional CV evaluation after.

  python -m gradejax.train --config configs/grades.py --workdir runs/grades [--config.steps=500]

Fast path (``config.fast_path``, the default with a frozen extractor): chips and
``config.num_views`` augmented views are embedded once (``WORKDIR/features``) and the head trains
on those features, a chunk of steps per compiled ``lax.scan``. Slow path: every step augments
and runs the extractor (needed when ``config.unfreeze`` trains ``level0``). Both draw step ``t``'s
batch from ``fold_in(key(seed), t)``, so a run killed and restarted from its orbax checkpoint
(``WORKDIR/checkpoints``, every ``save_every`` steps) ends with exactly the same params.
"""
from __future__ import annotations

import functools
import json
import logging
import pathlib
import re
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import traverse_util
from flax.training import train_state

from gradejax import logs
from gradejax.training import augment, input_pipeline
from gradejax.nets import extractor, classifier
from gradejax.evaluation import stats

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
  lr = learning_rate_fn(config)
  if config.optimizer == 'adam':
    return optax.adamw(lr, weight_decay=config.weight_decay)
  if config.optimizer == 'sgd':
    return optax.chain(optax.add_decayed_weights(config.weight_decay), optax.sgd(lr, 0.9))
  raise ValueError(f'config.optimizer must be adam or sgd, got {config.optimizer!r}')


def create_train_state(config, module: classifier.GradeClassifier, dim: int, key: Array,
                       frozen_extractor: dict | None = None) -> TrainState:
  """Head params from ``key`` (+ ``extractor/<unfreeze>`` from the dlib weights)."""
  head_vars = module.init(key, jnp.zeros((1, dim)), method='classify_features')
  params = {'head': head_vars['params']['head']}
  if config.unfreeze:
    trainable, _ = extractor.freeze_partition(frozen_extractor, (config.unfreeze,))
    params['extractor'] = trainable
  return TrainState.create(apply_fn=module.apply, params=params, tx=make_optimizer(config))


def weighted_loss(logits: Array, label: Array, weight: Array) -> Array:
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, label)
  return jnp.sum(ce * weight) / jnp.maximum(jnp.sum(weight), 1e-12)


def step_draws(key: Array, step: Array, probs: Array, batch_size: int, num_views: int):
  """Example indices [B], view indices [B] and the dropout key of step ``step``."""
  k = jax.random.fold_in(key, step)
  k_idx, k_view, k_drop = jax.random.split(k, 3)
  idx = jax.random.choice(k_idx, probs.shape[0], (batch_size,), replace=True, p=probs)
  view = jax.random.randint(k_view, (batch_size,), 0, num_views + 1)
  return idx, view, k_drop


def sampling(config, label: np.ndarray, mask: np.ndarray, num_classes: int):
  """(probabilities [N] of drawing each example, loss weights [N]) for ``config.imbalance``."""
  balanced = np.asarray(input_pipeline.class_weights(label, mask, num_classes))
  uniform = mask.astype(np.float32)
  if config.imbalance == 'weighted':
    return uniform / uniform.sum(), balanced
  if config.imbalance == 'oversample':
    return balanced / balanced.sum(), uniform
  if config.imbalance == 'none':
    return uniform / uniform.sum(), uniform
  raise ValueError(f'config.imbalance must be weighted, oversample or none, got '
                   f'{config.imbalance!r}')


def make_feature_chunk(config, module):
  """jitted ``(state, start, feats [V+1,N,D], label, probs, weight, norm) -> (state, losses)``
  running ``length`` steps as one ``lax.scan`` (length static: one compile per chunk size)."""
  key = jax.random.key(config.seed)

  @functools.partial(jax.jit, static_argnames='length')
  def run(state, start, feats, label, probs, weight, norm, length):
    def body(state, step):
      idx, view, k_drop = step_draws(key, step, probs, config.batch_size, config.num_views)
      x, y, w = feats[view, idx], label[idx], weight[idx]

      def loss_fn(params):
        logits = state.apply_fn({'params': params, 'norm': norm}, x, train=True,
                                rngs={'dropout': k_drop}, method='classify_features')
        return weighted_loss(logits, y, w)

      loss, grads = jax.value_and_grad(loss_fn)(state.params)
      return state.apply_gradients(grads=grads), loss

    return jax.lax.scan(body, state, start + jnp.arange(length))

  return run


def make_image_step(config, module, frozen: dict):
  """jitted slow-path step ``(state, step, images, label, probs, weight, norm)``: augment the
  drawn views and run them through the extractor (params merged from trainable + frozen)."""
  key = jax.random.key(config.seed)
  vkey = input_pipeline.view_key(config.seed)
  p = input_pipeline.augment_params(config)

  @jax.jit
  def step_fn(state, step, images, label, probs, weight, norm):
    idx, view, k_drop = step_draws(key, step, probs, config.batch_size, config.num_views)
    x = augment.views(vkey, input_pipeline.to_float_jnp(images[idx]), view, idx, p)

    def loss_fn(params):
      ext = extractor.merge(params.get('extractor', {}), frozen)
      full = {'head': params['head'], 'extractor': ext}
      logits = state.apply_fn({'params': full, 'norm': norm}, x, train=True,
                              rngs={'dropout': k_drop})
      return weighted_loss(logits, label[idx], weight[idx])

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), loss

  return step_fn


def split_metrics(module, params, norm, feats: np.ndarray, label: np.ndarray, mask: np.ndarray,
                  num_classes: int) -> dict[str, float]:
  """loss, balanced_accuracy, roc_auc of the head on view-0 features of ``mask``ed examples."""
  if not mask.any():
    return {}
  out = _metrics_fn(module, num_classes)(params['head'], norm, jnp.asarray(feats[mask]),
                                         jnp.asarray(label[mask]))
  return {k: float(v) for k, v in out.items()}


@functools.lru_cache(maxsize=8)
def _metrics_fn(module, num_classes: int):
  # Compiled once per run: the metrics are computed every config.log_every steps.
  @jax.jit
  def fn(head, norm, x, y):
    logits = module.apply({'params': {'head': head}, 'norm': norm}, x,
                          method='classify_features')
    r = stats.classification_report(y, jax.nn.softmax(logits), num_classes)
    return {'loss': weighted_loss(logits, y, jnp.ones(len(y))),
            'balanced_accuracy': r['balanced_accuracy'], 'roc_auc': r['roc_auc']}
  return fn


def checkpoint_manager(workdir: pathlib.Path, save_every: int) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      (workdir / 'checkpoints').absolute(),
      options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))


def _saved(state: TrainState, norm) -> dict:
  return {'params': state.params, 'opt_state': state.opt_state, 'step': state.step,
          'norm': norm}


def write_config(config, workdir: pathlib.Path, extra: dict) -> None:
  d = config.to_dict()
  d.update(extra)
  (workdir / 'config.json').write_text(json.dumps(d, indent=2, default=list))


class Writer:
  """TensorBoard event files (tensorboardX): scalars per split, text, the model graph, the
  evaluation and the projector's descriptors; never images unless ``enabled_images`` (they are
  students' photos)."""

  def __init__(self, logdir: pathlib.Path, enabled_images: bool = False):
    from tensorboardX import SummaryWriter
    self.logdir = pathlib.Path(logdir)
    self._w = SummaryWriter(str(logdir))
    self.enabled_images = enabled_images

  def scalars(self, step: int, metrics: dict[str, dict[str, float]], lr: float) -> None:
    for split, values in metrics.items():
      for name, v in values.items():
        self._w.add_scalar(f'{split}/{name}', v, step)
    self._w.add_scalar('train/learning_rate', lr, step)
    self._w.flush()

  def text(self, tag: str, markdown: str, step: int = 0) -> None:
    self._w.add_text(tag, markdown, step)

  def graph(self, module, image_shape: tuple[int, ...]) -> int:
    """The Graphs dashboard: ``module``'s forward traced at ``image_shape`` (no TensorFlow:
    gradejax.training.tb_graph builds the GraphDef from the jaxpr). Returns the node count."""
    from tensorboardX.proto import event_pb2
    from gradejax.training import tb_graph
    g = tb_graph.module_graph(module, jax.ShapeDtypeStruct(tuple(image_shape), jnp.float32))
    self._w._get_file_writer().add_event(event_pb2.Event(graph_def=g.SerializeToString()))
    self._w.flush()
    return len(g.node)

  def evaluation(self, step: int, verdict: dict[str, Any], text: str) -> None:
    """The verdict's numbers as ``eval/*`` scalars at ``step`` (CV score, CI ends, p, null
    mean, each baseline's score) and its text under ``eval/verdict``."""
    num = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)
    values = {k: verdict.get(k) for k in ('cv_score', 'p_value', 'null_mean', 'null_q95',
                                          'chance')}
    ci = verdict.get('ci95')
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
      values.update(ci95_low=ci[0], ci95_high=ci[1])
    for name, b in (verdict.get('baselines') or {}).items():
      b = b if isinstance(b, dict) else {'cv_score': b}
      values[f'baseline_{name}'] = b.get('cv_score', b.get('score'))
    for k, v in values.items():
      if num(v):
        self._w.add_scalar(f'eval/{k}', float(v), step)
    self._w.add_text('eval/verdict', '\n'.join(f'    {line}' for line in text.splitlines()),
                     step)
    self._w.flush()

  def embedding(self, features: np.ndarray, metadata: list[list[str]], header: list[str],
                step: int, images: np.ndarray | None = None, thumb: int = 32) -> None:
    """The Projector: ``features`` [N, D] with one metadata row per example (e.g. class,
    fold); thumbnails (``images`` uint8 [N, H, W, 3] resized to ``thumb`` px) only if
    ``enabled_images``. Once per step: a rerun of a finished run does not add a copy."""
    if (self.logdir / f'{step:05d}' / 'descriptor').exists():
      return
    label_img = None
    if images is not None and self.enabled_images:
      from PIL import Image
      small = np.stack([np.asarray(Image.fromarray(np.asarray(im)).resize((thumb, thumb)))
                        for im in images])
      label_img = small.transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # [N, C, H, W]
    self._w.add_embedding(np.asarray(features, np.float32), metadata=metadata,
                          label_img=label_img, global_step=step, tag='descriptor',
                          metadata_header=header)

  def hparams(self, config, metric_tags) -> None:
    """The flattened config for TensorBoard's HParams dashboard (experiment + session start),
    with ``metric_tags`` (scalar tags of this run) as its metrics; ``end_session`` closes it."""
    from tensorboardX.summary import hparams
    flat = {k: v if isinstance(v, (bool, int, float, str)) else str(v)
            for k, v in traverse_util.flatten_dict(config.to_dict(), sep='.').items()}
    experiment, start, _ = hparams(flat, {t: 0.0 for t in metric_tags})
    for summary in (experiment, start):
      self._w._get_file_writer().add_summary(summary)

  def end_session(self) -> None:
    from tensorboardX.summary import hparams
    _, _, end = hparams({}, {})  # the SessionEndInfo summary, status success
    self._w._get_file_writer().add_summary(end)

  def close(self) -> None:
    self._w.close()


def param_table(trainable: dict, extractor_params: dict, config) -> str:
  """Markdown table of every param array: path, shape, trained or frozen."""
  rows = ['| param | shape | |', '|---|---|---|']
  flat_t = traverse_util.flatten_dict(trainable, sep='/')
  for k, v in flat_t.items():
    rows.append(f'| {k} | {tuple(v.shape)} | trained |')
  unfrozen = {f'extractor/{k}' for k in flat_t if k.startswith('extractor/')}
  total_frozen = 0
  for k, v in traverse_util.flatten_dict(extractor_params, sep='/').items():
    if f'extractor/{k}' not in unfrozen:
      total_frozen += int(np.prod(v.shape))
  n_train = sum(int(np.prod(v.shape)) for v in flat_t.values())
  rows.append(f'| extractor (FaceResNet, head input `{config.head_input}`) | '
              f'{total_frozen} values | frozen |')
  return '\n'.join(rows + ['', f'trained: {n_train} values; frozen: {total_frozen} values'])


def hparam_table(config) -> str:
  flat = traverse_util.flatten_dict(config.to_dict(), sep='.')
  return '\n'.join(['| key | value |', '|---|---|'] +
                    [f'| {k} | {v} |' for k, v in sorted(flat.items())])


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the head (resuming from ``WORKDIR/checkpoints`` if any); returns final metrics."""
  workdir = pathlib.Path(workdir).absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  data = input_pipeline.load_dataset(config)
  label, num_classes = data['label'], data['num_classes']
  if config.get('shuffle_labels_seed', -1) >= 0:
    # Adebayo et al.'s label randomisation: the same run on labels that carry no information.
    label = np.random.default_rng(config.shuffle_labels_seed).permutation(label)
    data['label'] = label
  ext_module, ext_vars = extractor.load_face_resnet()
  module = make_model(config, num_classes, ext_module.input_means)
  feats = input_pipeline.cached_features(config, data, workdir, ext_module, ext_vars,
                                         input_pipeline.weights_id(config))
  n, dim = feats.shape[1:]
  valid = (data['fold'] == config.valid_fold) if config.valid_fold >= 0 else np.zeros(n, bool)
  train = ~valid
  base = feats[0][train]
  norm = {'head': {'mean': jnp.asarray(base.mean(0)),
                   'std': jnp.asarray(np.maximum(base.std(0), 1e-6))}}
  probs, weight = sampling(config, label, train, num_classes)
  write_config(config, workdir, {'num_classes': num_classes, 'class_names': data['class_names'],
                                 'input_means': list(ext_module.input_means),
                                 'feature_dim': int(dim)})

  state = create_train_state(config, module, dim, jax.random.fold_in(jax.random.key(config.seed),
                                                                     1), ext_vars['params'])
  mngr = checkpoint_manager(workdir, config.save_every)
  if mngr.latest_step() is not None:
    restored = mngr.restore(mngr.latest_step(),
                            args=ocp.args.StandardRestore(_saved(state, norm)))
    state = state.replace(params=restored['params'], opt_state=restored['opt_state'],
                          step=restored['step'])
    logging.info('Resumed from step %d (%s)', int(state.step), workdir / 'checkpoints')

  writer = Writer(workdir / 'tb', enabled_images=config.log_images)
  if int(state.step) == 0:
    writer.text('model', param_table(state.params, ext_vars['params'], config))
    writer.text('hparams', hparam_table(config))
    writer.hparams(config, [f'{split}/{name}' for split in ('train', 'valid')
                            for name in ('loss', 'balanced_accuracy', 'roc_auc')])
    writer.graph(module, (1,) + tuple(data['images'].shape[1:]))
  lr_fn = learning_rate_fn(config)
  frozen = None
  if config.fast_path:
    if config.unfreeze:
      raise ValueError('config.unfreeze needs the slow path: set --config.fast_path=False')
    run_chunk = make_feature_chunk(config, module)
    feats_j = jnp.asarray(feats)
  else:
    _, frozen = extractor.freeze_partition(ext_vars['params'], (config.unfreeze,)
                                           if config.unfreeze else ())
    step_fn = make_image_step(config, module, frozen)
    images_j = jnp.asarray(data['images'])
  label_j, probs_j, weight_j = map(jnp.asarray, (label, probs, weight))

  metrics: dict[str, Any] = {}
  step = int(state.step)
  log_every = max(1, int(config.get('log_every', config.save_every)))
  while step < config.steps:
    # One compiled chunk up to the next log point, checkpoint or the end (the batches depend on
    # the step only, so the chunking changes no result).
    length = min(log_every - step % log_every, config.save_every - step % config.save_every,
                 config.steps - step)
    t0 = time.time()
    if config.fast_path:
      state, losses = run_chunk(state, jnp.int32(step), feats_j, label_j, probs_j, weight_j,
                                norm, length=length)
    else:
      losses = []
      for s in range(step, step + length):
        state, loss = step_fn(state, jnp.int32(s), images_j, label_j, probs_j, weight_j, norm)
        losses.append(loss)
      losses = jnp.stack(losses)
    losses = np.asarray(losses)
    dt = time.time() - t0
    step += length
    eval_params = state.params
    if not config.fast_path and config.unfreeze:
      # Unfrozen layers change the features: re-embed view 0 for the metrics.
      eval_feats = _embed_with(module, state.params, frozen, data['images'])
    else:
      eval_feats = feats[0]
    metrics = {'train': split_metrics(module, eval_params, norm, eval_feats, label, train,
                                      num_classes),
               'valid': split_metrics(module, eval_params, norm, eval_feats, label, valid,
                                      num_classes)}
    metrics['train']['step_loss'] = float(losses.mean())
    writer.scalars(step, metrics, lr=float(lr_fn(step - 1)))
    if step % config.save_every and step < config.steps:
      continue  # a log point only
    logging.info('step %d/%d  loss %.4f  valid %s  %.1f steps/s', step, config.steps,
                 losses.mean(), metrics['valid'], length / max(dt, 1e-9))
    mngr.save(step, args=ocp.args.StandardSave(_saved(state, norm)))
    mngr.wait_until_finished()
    if 0 < config.stop_after_steps <= step < config.steps:
      logging.warning('Stopping at step %d (config.stop_after_steps); rerun to resume.', step)
      writer.close()
      mngr.close()
      return {'stopped_at': step, **metrics}
  writer.end_session()
  mngr.close()
  (workdir / 'metrics.json').write_text(json.dumps(metrics, indent=2))
  writer.embedding(feats[0], [[data['class_names'][k] if k < len(data['class_names']) else
                               str(k), str(int(f)), 'valid' if v else 'train']
                              for k, f, v in zip(label, data['fold'], valid)],
                   ['class', 'fold', 'split'], int(config.steps), data['images'])
  if config.evaluate:
    from gradejax.evaluation import evaluate
    metrics['verdict'] = evaluate.evaluate_workdir(workdir, config=config, data=data,
                                                   features=feats)
    writer.evaluation(int(config.steps), metrics['verdict'],
                      evaluate.verdict_text(metrics['verdict']))
  writer.close()
  return metrics


def _embed_with(module, params, frozen, images: np.ndarray) -> np.ndarray:
  ext = extractor.merge(params.get('extractor', {}), frozen)
  trunk = classifier.FaceTrunk(input_means=module.input_means, head_input=module.head_input)
  fn = jax.jit(lambda p, x: trunk.apply({'params': p}, input_pipeline.to_float_jnp(x)))
  return np.concatenate([np.asarray(fn(ext, images[s:s + 32]))
                         for s in range(0, len(images), 32)])


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
  mngr = checkpoint_manager(workdir, config.save_every)
  if mngr.latest_step() is None:
    raise FileNotFoundError(f'{workdir / "checkpoints"}: no checkpoint; train first.')
  restored = mngr.restore(mngr.latest_step(), args=ocp.args.StandardRestore(_saved(state, norm)))
  mngr.close()
  trained = restored['params']
  frozen = ext_vars['params']
  if config.unfreeze:
    _, frozen = extractor.freeze_partition(frozen, (config.unfreeze,))
  ext = extractor.merge(trained.get('extractor', {}), frozen)
  variables = {'params': {'extractor': ext, 'head': trained['head']}, 'norm': restored['norm']}
  return module, variables, config


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing that names a wrong ``--config.<key>`` instead of a bare AttributeError."""
  from absl import flags
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:
    msg = str(e)
    keys = [a[len('--config.'):].split('=')[0] for a in argv[1:] if a.startswith('--config.')]
    key = next((k for k in keys if k.split('.')[-1] in msg), msg)
    hint = re.search(r'Did you mean "([^"]+)"', msg)
    raise SystemExit(f'Unknown config key {key!r} (--config.{key}=...): the config file does not '
                     f'define it{f"; did you mean {hint.group(1)!r}?" if hint else "."} See '
                     f'configs/default.py for the valid keys.') from None
  except flags.Error as e:
    raise SystemExit(f'{e}\nUsage: python -m gradejax.train --config configs/<name>.py '
                     f'--workdir DIR [--config.key=value]') from None


class _QuietOrbax(logging.Filter):
  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or 'orbax' not in record.pathname


def main(argv) -> None:
  del argv
  logs.quiet_libraries()
  from absl import flags
  f = flags.FLAGS
  logging.getLogger().setLevel(logging.INFO)
  for h in logging.getLogger().handlers:
    h.addFilter(_QuietOrbax())
  train_and_evaluate(f.config, f.workdir)


def command() -> None:
  """The ``gradejax.train`` command: defines its flags, parses argv, runs :func:`main`."""
  from absl import app, flags
  from ml_collections import config_flags
  config_flags.DEFINE_config_file('config', None, 'a configs/*.py file', lock_config=True)
  flags.DEFINE_string('workdir', None, 'work directory (checkpoints, tb, features, eval)',
                      required=True)
  app.run(main, flags_parser=parse_flags)
