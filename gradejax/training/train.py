r"""Trains the grade classifier's head on the frozen face ResNet (:func:`train`).

The command ``python -m gradejax.train`` (:mod:`gradejax.train`) runs it, then the evaluation
when ``config.evaluate``; reading a finished run is :mod:`gradejax.training.runs`.

Fast path (``config.fast_path``, the default with a frozen extractor): chips and
``config.num_views`` augmented views are embedded once (``WORKDIR/features``) and the head trains
on those features, a chunk of steps per compiled ``lax.scan``. Slow path: every step augments
and runs the extractor (needed when ``config.unfreeze`` trains ``level0``). Both draw step ``t``'s
batch from ``fold_in(key(seed), t)``, so a run killed and restarted from its orbax checkpoint
(``WORKDIR/checkpoints``, every ``save_every`` steps) ends with exactly the same params.

:func:`train` runs the steps in order: :func:`setup_run` (data, model, features, split,
sampling), :func:`restore_or_init`, :func:`log_run_start`, :func:`make_chunk_runner`,
:func:`train_loop` (chunks of :func:`chunk_length` steps, :func:`chunk_metrics`,
:func:`check_finite`, scalars, checkpoints) and :func:`log_run_end`. A loss that turns NaN or
inf stops the run (FloatingPointError naming the step and the config fields to change) before
anything non-finite is logged or checkpointed.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import pathlib
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import traverse_util

from gradejax import batching, imageops
from gradejax.training import augment, input_pipeline, runs
from gradejax.training.runs import create_train_state, learning_rate_fn, make_model
from gradejax.nets import extractor, classifier
from gradejax import stats

Array = jax.Array


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
      label_img = imageops.to_unit_float(small.transpose(0, 3, 1, 2))  # [N, C, H, W]
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


@dataclasses.dataclass(frozen=True)
class Setup:
  """What a run decides once, before its first step, from the config and the data.

  ``feats`` [1 + num_views, N, D] are the cached features (view 0: the chip itself); ``train``
  and ``valid`` bool [N] split the N examples by ``config.valid_fold``; ``norm`` is the head's
  standardisation (``{'head': {'mean', 'std'}}`` [D], from view 0 of the training rows);
  ``probs`` [N] is the chance of drawing each example and ``weight`` [N] its loss weight
  (:func:`sampling`); ``frozen`` the extractor params the optimiser never sees.
  """
  data: dict[str, Any]
  module: classifier.GradeClassifier
  extractor_params: dict
  frozen: dict
  feats: np.ndarray
  train: np.ndarray
  valid: np.ndarray
  norm: dict
  probs: np.ndarray
  weight: np.ndarray


def load_data(config) -> dict[str, Any]:
  """The dataset (:func:`input_pipeline.load_dataset`), labels permuted by
  ``config.shuffle_labels_seed`` when it is >= 0."""
  data = input_pipeline.load_dataset(config)
  if config.get('shuffle_labels_seed', -1) >= 0:
    # Adebayo et al.'s label randomisation: the same run on labels that carry no information.
    data['label'] = np.random.default_rng(config.shuffle_labels_seed).permutation(data['label'])
  return data


def setup_run(config, workdir: pathlib.Path) -> Setup:
  """Data, model, cached features, split, standardisation and sampling of a run; writes
  ``WORKDIR/config.json`` (the config plus what the data decided)."""
  if config.fast_path and config.unfreeze:
    raise ValueError('config.unfreeze needs the slow path: set --config.fast_path=False')
  data = load_data(config)
  label, num_classes = data['label'], data['num_classes']
  ext_module, ext_vars = extractor.load_face_resnet()
  module = make_model(config, num_classes, ext_module.input_means)
  feats = input_pipeline.cached_features(config, data, workdir, ext_module, ext_vars,
                                         input_pipeline.weights_id(config))
  n, dim = feats.shape[1:]
  valid = (data['fold'] == config.valid_fold) if config.valid_fold >= 0 else np.zeros(n, bool)
  probs, weight = sampling(config, label, ~valid, num_classes)
  _, frozen = extractor.freeze_partition(ext_vars['params'], (config.unfreeze,)
                                         if config.unfreeze else ())
  runs.write_config(config, workdir, {'num_classes': num_classes,
                                      'class_names': data['class_names'],
                                      'input_means': list(ext_module.input_means),
                                      'feature_dim': int(dim)})
  return Setup(data=data, module=module, extractor_params=ext_vars['params'], frozen=frozen,
               feats=feats, train=~valid, valid=valid,
               norm={'head': classifier.norm_stats(feats[0], ~valid)}, probs=probs,
               weight=weight)


def restore_or_init(config, setup: Setup, mngr: ocp.CheckpointManager) -> runs.TrainState:
  """The fresh train state (head from ``fold_in(key(seed), 1)``), or the latest checkpoint's."""
  state = create_train_state(config, setup.module, setup.feats.shape[-1],
                             jax.random.fold_in(jax.random.key(config.seed), 1),
                             setup.extractor_params)
  if mngr.latest_step() is None:
    return state
  restored = mngr.restore(mngr.latest_step(),
                          args=ocp.args.StandardRestore(runs.saved(state, setup.norm)))
  logging.info('Resumed from step %d (%s)', int(restored['step']), mngr.directory)
  return state.replace(params=restored['params'], opt_state=restored['opt_state'],
                       step=restored['step'])


def log_run_start(writer: Writer, config, setup: Setup, state: runs.TrainState) -> None:
  """TensorBoard's once-per-run records: the param table, the config (text and HParams) and
  the model graph."""
  writer.text('model', param_table(state.params, setup.extractor_params, config))
  writer.text('hparams', hparam_table(config))
  writer.hparams(config, [f'{split}/{name}' for split in ('train', 'valid')
                          for name in ('loss', 'balanced_accuracy', 'roc_auc')])
  writer.graph(setup.module, (1,) + tuple(setup.data['images'].shape[1:]))


ChunkRunner = Callable[[runs.TrainState, int, int], tuple[runs.TrainState, np.ndarray]]


def make_chunk_runner(config, setup: Setup) -> ChunkRunner:
  """``run(state, start, length) -> (state, losses [length])``: steps ``start .. start +
  length - 1``, one compiled ``lax.scan`` on the cached features (fast path) or one compiled
  augment-and-embed step per step (slow path)."""
  label, probs, weight = map(jnp.asarray, (setup.data['label'], setup.probs, setup.weight))
  if config.fast_path:
    chunk = make_feature_chunk(config, setup.module)
    feats = jnp.asarray(setup.feats)

    def run(state, start, length):
      state, losses = chunk(state, jnp.int32(start), feats, label, probs, weight, setup.norm,
                            length=length)
      return state, np.asarray(losses)
  else:
    step_fn = make_image_step(config, setup.module, setup.frozen)
    images = jnp.asarray(setup.data['images'])

    def run(state, start, length):
      losses = []
      for s in range(start, start + length):
        state, loss = step_fn(state, jnp.int32(s), images, label, probs, weight, setup.norm)
        losses.append(loss)
      return state, np.asarray(jnp.stack(losses))
  return run


def chunk_length(config, step: int) -> int:
  """Steps from ``step`` to the next log point, checkpoint or the end (the batches depend on
  the step only, so the chunking changes no result)."""
  log_every = max(1, int(config.get('log_every', config.save_every)))
  return min(log_every - step % log_every, config.save_every - step % config.save_every,
             config.steps - step)


def chunk_metrics(config, setup: Setup, params, losses: np.ndarray
                  ) -> dict[str, dict[str, float]]:
  """``{'train': {...}, 'valid': {...}}`` (:func:`split_metrics`) of ``params``, plus the chunk's
  mean minibatch loss as ``train/step_loss``."""
  if config.unfreeze:
    # Unfrozen layers change the features: re-embed view 0 for the metrics.
    feats = _embed_with(setup.module, params, setup.frozen, setup.data['images'])
  else:
    feats = setup.feats[0]
  label, num_classes = setup.data['label'], setup.data['num_classes']
  metrics = {split: split_metrics(setup.module, params, setup.norm, feats, label, mask,
                                  num_classes)
             for split, mask in (('train', setup.train), ('valid', setup.valid))}
  metrics['train']['step_loss'] = float(losses.mean())
  return metrics


def check_finite(config, start: int, losses: np.ndarray, metrics: dict) -> None:
  """Stops a diverged run before it logs or checkpoints NaN: raises FloatingPointError naming
  the first step (1-based, as logged) whose minibatch loss ``losses [length]`` (steps ``start
  ..``) is not finite, or the chunk's end when only the split losses after it are, and the
  config fields to change."""
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    where = f'the minibatch loss of step {start + bad[0] + 1} is {losses[bad[0]]}'
  else:
    split = next((k for k in ('train', 'valid')
                  if not np.isfinite(metrics[k].get('loss', 0.0))), None)
    if split is None:
      return
    where = (f'the {split}-split loss after step {start + len(losses)} is '
             f'{metrics[split]["loss"]}')
  fields = f'optimizer={config.optimizer!r}, learning_rate={config.learning_rate}'
  if config.unfreeze:
    fields += (f', unfreeze={config.unfreeze!r}, '
               f'unfreeze_lr_scale={config.get("unfreeze_lr_scale", 1.0)}')
  remedies = ['lower --config.learning_rate']
  if config.optimizer != 'adam':
    remedies.append('try --config.optimizer=adam')
  if config.unfreeze:
    remedies += ['lower --config.unfreeze_lr_scale',
                 'train the head only (--config.unfreeze=)']
  raise FloatingPointError(
      f'Training diverged: {where} (of {config.steps} steps; {fields}). Nothing after step '
      f'{start} was logged or checkpointed, and a rerun resumes into the same divergence: '
      f'{", ".join(remedies)}.')


def train_loop(config, setup: Setup, state: runs.TrainState, run_chunk: ChunkRunner,
               writer: Writer, mngr: ocp.CheckpointManager
               ) -> tuple[dict[str, Any], int | None]:
  """Steps ``state.step .. config.steps``: TensorBoard scalars at every log point, an orbax
  checkpoint every ``save_every`` steps. Returns ``(last metrics, stopped_at)``, ``stopped_at``
  the step where ``config.stop_after_steps`` ended the run early, else None."""
  lr_fn = learning_rate_fn(config)
  metrics: dict[str, Any] = {}
  step = int(state.step)
  while step < config.steps:
    length = chunk_length(config, step)
    t0 = time.time()
    state, losses = run_chunk(state, step, length)
    dt = time.time() - t0
    step += length
    metrics = chunk_metrics(config, setup, state.params, losses)
    check_finite(config, step - length, losses, metrics)
    writer.scalars(step, metrics, lr=float(lr_fn(step - 1)))
    if step % config.save_every and step < config.steps:
      continue  # a log point only
    logging.info('step %d/%d  loss %.4f  valid %s  %.1f steps/s', step, config.steps,
                 losses.mean(), metrics['valid'], length / max(dt, 1e-9))
    mngr.save(step, args=ocp.args.StandardSave(runs.saved(state, setup.norm)))
    mngr.wait_until_finished()
    if 0 < config.stop_after_steps <= step < config.steps:
      logging.warning('Stopping at step %d (config.stop_after_steps); rerun to resume.', step)
      return metrics, step
  return metrics, None


def log_run_end(writer: Writer, config, setup: Setup, metrics: dict, workdir: pathlib.Path
                ) -> None:
  """A finished run's records: ``WORKDIR/metrics.json``, the HParams session end and the
  Projector's view-0 features with class, fold and split."""
  writer.end_session()
  (workdir / 'metrics.json').write_text(json.dumps(metrics, indent=2))
  names = setup.data['class_names']
  writer.embedding(setup.feats[0], [[names[k] if k < len(names) else str(k), str(int(f)),
                                     'valid' if v else 'train']
                                    for k, f, v in zip(setup.data['label'], setup.data['fold'],
                                                       setup.valid)],
                   ['class', 'fold', 'split'], int(config.steps), setup.data['images'])


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path
          ) -> tuple[dict[str, Any], dict[str, Any], np.ndarray]:
  """Trains the head (resuming from ``WORKDIR/checkpoints`` if any).

  Returns ``(metrics, data, features)``: the final metrics (``{'stopped_at': step, ...}`` when
  ``config.stop_after_steps`` ended the run early), the dataset as trained on (labels shuffled
  if ``config.shuffle_labels_seed >= 0``) and the cached features ``[1 + num_views, N, D]``, so
  that the command layer can evaluate the run without reloading them.
  """
  workdir = pathlib.Path(workdir).absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  setup = setup_run(config, workdir)
  mngr = runs.checkpoint_manager(workdir)
  writer = Writer(workdir / 'tb', enabled_images=config.log_images)
  try:
    state = restore_or_init(config, setup, mngr)
    if int(state.step) == 0:
      log_run_start(writer, config, setup, state)
    run_chunk = make_chunk_runner(config, setup)
    metrics, stopped_at = train_loop(config, setup, state, run_chunk, writer, mngr)
    if stopped_at is not None:
      return {'stopped_at': stopped_at, **metrics}, setup.data, setup.feats
    log_run_end(writer, config, setup, metrics, workdir)
    return metrics, setup.data, setup.feats
  finally:
    writer.close()
    mngr.close()


def _embed_with(module, params, frozen, images: np.ndarray) -> np.ndarray:
  ext = extractor.merge(params.get('extractor', {}), frozen)
  trunk = classifier.FaceTrunk(input_means=module.input_means, head_input=module.head_input)
  fn = jax.jit(lambda p, x: trunk.apply({'params': p}, input_pipeline.to_float_jnp(x)))
  return batching.map_batches(lambda x: fn(ext, x), images, 32)


def retrain_on_shuffled_labels(workdir: str | pathlib.Path, config, seed: int) -> dict:
  """Adebayo et al.'s label randomisation: trains the run's head again on labels permuted by
  ``seed``, in ``WORKDIR/sanity/shuffled_labels`` (reusing the run's cached features), and
  returns its params (same structure as the run's)."""
  import shutil
  sub = pathlib.Path(workdir) / 'sanity' / 'shuffled_labels'
  if jax.process_index() == 0:  # in a multi-host run, process 0 alone writes (below)
    shutil.rmtree(sub, ignore_errors=True)
    if (pathlib.Path(workdir) / 'features').is_dir():
      shutil.copytree(pathlib.Path(workdir) / 'features', sub / 'features')
  cfg = ml_collections.ConfigDict(config.to_dict())
  with cfg.unlocked():
    cfg.shuffle_labels_seed, cfg.evaluate = seed, False
  if jax.process_count() == 1:
    train(cfg, sub)
  else:
    # A multi-host run (gradejax.distributed): orbax cannot save this training's host-local
    # arrays from several processes, and one process alone would wait for the others' part of
    # the save. So process 0 trains in a child process outside the run (the same training a
    # single process does), the others wait for it, and every process reads its checkpoint.
    import os
    import subprocess
    import sys
    from gradejax import distributed
    rc = 0
    if distributed.is_main():
      code = ('import json, sys, ml_collections\nfrom gradejax.training import train\n'
              'train.train(ml_collections.ConfigDict(json.loads(sys.stdin.read())), sys.argv[1])')
      root = str(pathlib.Path(__file__).resolve().parents[2])
      env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
          root, os.environ.get('PYTHONPATH')])))
      rc = subprocess.run([sys.executable, '-c', code, str(sub)], input=json.dumps(cfg.to_dict()),
                          text=True, env=env).returncode
    if int(distributed.broadcast(np.int32(rc))) != 0:
      raise RuntimeError(f're-training on shuffled labels in {sub} failed (exit status {rc} '
                         'in process 0; its messages are in process 0\'s log)')
  return runs.load_trained(sub)[1]['params']
