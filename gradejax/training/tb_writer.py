"""TensorBoard records of a run (tensorboardX, no TensorFlow): the training curves, text, the
model graph (:mod:`gradejax.training.tb_graph`), the HParams session with the verdict as its
metrics, and the Projector's descriptors."""
from __future__ import annotations

import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util


def verdict_metrics(verdict: dict[str, Any]) -> dict[str, float]:
  """The verdict's numbers by name: CV score, CI ends, p (and the ledger's Holm p and count of
  analyses), null mean and 95th percentile, chance, predictable (0/1), the incremental gain of
  the CNN over the baselines, and each baseline's CV score (``baseline_<name>``)."""
  num = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)
  values: dict[str, Any] = {k: verdict.get(k) for k in ('cv_score', 'p_value', 'null_mean',
                                                        'null_q95', 'chance')}
  ci = verdict.get('ci95')
  if isinstance(ci, (list, tuple)) and len(ci) == 2:
    values.update(ci95_low=ci[0], ci95_high=ci[1])
  if isinstance(verdict.get('predictable'), bool):
    values['predictable'] = float(verdict['predictable'])
  lg = verdict.get('ledger') or {}
  values.update(p_holm=lg.get('p_holm'), analyses=lg.get('analyses'))
  incr = verdict.get('incremental') or {}
  if num(incr.get('with_cnn_score')) and num(incr.get('baselines_score')):
    values['incremental_gain'] = incr['with_cnn_score'] - incr['baselines_score']
  for name, b in (verdict.get('baselines') or {}).items():
    b = b if isinstance(b, dict) else {'cv_score': b}
    values[f'baseline_{name}'] = b.get('cv_score', b.get('score'))
  return {k: float(v) for k, v in values.items() if num(v)}


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

  def evaluation(self, step: int, verdict: dict[str, Any], text: str) -> dict[str, float]:
    """The verdict as this run's HParams metrics: its numbers as ``verdict/*`` scalars at
    ``step`` (:func:`verdict_metrics`; the HParams dashboard shows each run's last value as a
    column, one row per run, comparable across runs) and its text as one summary text,
    ``verdict``. Named ``verdict/``, the one-value charts sort after the training curves
    (``train/``, ``valid/``) in the Scalars dashboard. Returns the metrics written."""
    values = verdict_metrics(verdict)
    for k, v in values.items():
      self._w.add_scalar(f'verdict/{k}', v, step)
    self._w.add_text('verdict', '\n'.join(f'    {line}' for line in text.splitlines()), step)
    self._w.flush()
    return values

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

  def hparams(self, config) -> None:
    """The flattened config as this run's HParams session (session start info). No experiment
    record: TensorBoard then builds the experiment from every run's session and metrics
    (all scalar tags, the verdict's included), so runs with other settings or other baselines
    stay comparable in one table (with an experiment record it would show the first run's
    columns only); :meth:`end_session` closes it."""
    from tensorboardX.summary import hparams
    flat = {k: v if isinstance(v, (bool, int, float, str)) else str(v)
            for k, v in traverse_util.flatten_dict(config.to_dict(), sep='.').items()}
    _, start, _ = hparams(flat, {})
    self._w._get_file_writer().add_summary(start)

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


