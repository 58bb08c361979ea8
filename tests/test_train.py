"""Training on a small prepared folder of real photos (astronaut crops): resume, TensorBoard,
fast vs slow path, load_trained, error messages."""
import json
import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from tensorboard.backend.event_processing import event_accumulator

from configs import toy
from run_fixtures import config_for
from gradejax.training import input_pipeline, runs, train
from gradejax.train import train_and_evaluate
from gradejax import nets

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def data_dir(train_data_dir):
  return train_data_dir


def params_of(workdir):
  _, variables, _ = runs.load_trained(workdir)
  return variables


@pytest.fixture(scope='module')
def full_run(trained_run):
  return trained_run


def test_resume_after_kill_gives_identical_metrics(data_dir, full_run, tmp_path):
  workdir, metrics = full_run
  first = train_and_evaluate(config_for(data_dir, stop_after_steps=30), str(tmp_path))
  assert first['stopped_at'] == 40  # stops at the first checkpoint at or after step 30
  assert not (tmp_path / 'metrics.json').exists()
  resumed = train_and_evaluate(config_for(data_dir, stop_after_steps=30), str(tmp_path))
  assert resumed == metrics
  a, b = params_of(workdir), params_of(tmp_path)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  # Different seed -> different head: the comparison above can fail.
  other = train_and_evaluate(config_for(data_dir, seed=1), str(tmp_path / 'seed1'))
  assert other['train'] != metrics['train']


def test_training_learns_and_writes_config_and_features(full_run):
  workdir, metrics = full_run
  # Learning, measured against the run's own start (TensorBoard, logged every log_every = 10
  # steps). Measured (toy config, seed 0): mean minibatch loss of steps 1-10 -> 51-60: 1.169 ->
  # 0.326 (ratio 0.28); full training-set loss at step 10 -> 60: 0.664 -> 0.537 (ratio 0.81);
  # training ROC AUC at step 60: 0.89. With learning_rate=0 the same run gives ratios 1.10 and
  # 1.00 and an AUC of 0.56.
  acc = event_accumulator.EventAccumulator(str(workdir / 'tb'))
  acc.Reload()
  step_loss = [e.value for e in acc.Scalars('train/step_loss')]
  loss = [e.value for e in acc.Scalars('train/loss')]
  assert [e.step for e in acc.Scalars('train/loss')] == [10, 20, 30, 40, 50, 60]
  assert loss[-1] == pytest.approx(metrics['train']['loss'], rel=1e-5)
  assert step_loss[-1] < 0.6 * step_loss[0]
  assert loss[-1] < 0.95 * loss[0]
  assert metrics['train']['roc_auc'] > 0.8
  cfg = json.loads((workdir / 'config.json').read_text())
  assert cfg['num_classes'] == 2 and cfg['head_input'] == 'descriptor'
  feats = list((workdir / 'features').glob('*.npz'))
  assert len(feats) == 1 and np.load(feats[0])['features'].shape == (2, 24, 128)


def test_tensorboard_read_back(full_run):
  workdir, metrics = full_run
  acc = event_accumulator.EventAccumulator(str(workdir / 'tb'),
                                           size_guidance={event_accumulator.TENSORS: 0})
  acc.Reload()
  tags = set(acc.Tags()['scalars'])
  for split in ('train', 'valid'):
    for name in ('loss', 'balanced_accuracy', 'roc_auc'):
      assert f'{split}/{name}' in tags
  assert 'train/learning_rate' in tags
  config = runs.load_config(workdir)
  loss = acc.Scalars('valid/loss')
  assert len(loss) >= config.steps // config.log_every  # a curve, not two checkpoints
  assert [e.step for e in loss] == list(range(config.log_every, config.steps + 1,
                                              config.log_every))
  assert loss[-1].value == pytest.approx(metrics['valid']['loss'], rel=1e-5)
  lr = acc.Scalars('train/learning_rate')
  # The schedule itself, at the last step of each logged chunk.
  want = [float(runs.learning_rate_fn(config)(e.step - 1)) for e in lr]
  np.testing.assert_allclose([e.value for e in lr], want, rtol=1e-6)
  assert lr[-1].value < max(e.value for e in lr)  # cosine decay after the warm-up
  assert not acc.Tags()['images']  # personal data: off by default
  texts = [t for t in acc.Tags()['tensors'] if t.startswith(('model', 'hparams'))]
  assert len(texts) == 2
  # The HParams dashboard's records, parsed by tensorboard's own hparams plugin.
  from tensorboard.plugins.hparams import api_pb2, metadata as hp_meta
  records = acc.PluginTagToContent(hp_meta.PLUGIN_NAME)
  start = hp_meta.parse_session_start_info_plugin_data(records[hp_meta.SESSION_START_INFO_TAG])
  assert start.hparams['learning_rate'].number_value == pytest.approx(config.learning_rate)
  assert start.hparams['steps'].number_value == config.steps
  assert start.hparams['head_input'].string_value == config.head_input
  # No experiment record: TensorBoard builds one from every run's session and scalars, so runs
  # stay comparable (tests/test_reruns.py reads that table through the plugin's own backend).
  assert hp_meta.EXPERIMENT_TAG not in records
  end = hp_meta.parse_session_end_info_plugin_data(records[hp_meta.SESSION_END_INFO_TAG])
  assert end.status == api_pb2.STATUS_SUCCESS  # the run finished


def test_load_trained_follows_nets_and_matches_features(data_dir, full_run):
  workdir, _ = full_run
  module, variables, config = runs.load_trained(workdir)
  data = input_pipeline.load_dataset(config)
  images = jnp.asarray(data['images'][:3], jnp.float32) / 255.0
  logits, acts = nets.bind(module, variables)(images)
  assert logits.shape == (3, 2)
  assert {'extractor/level1', 'extractor/descriptor', 'head/hidden0', 'logits'} <= set(acts)
  feats = np.load(next((workdir / 'features').glob('*.npz')))['features'][0, :3]
  want = module.apply(variables, jnp.asarray(feats), method='classify_features')
  np.testing.assert_allclose(logits, want, atol=1e-4)


def test_fast_path_equals_slow_path_on_the_same_views(data_dir, tmp_path):
  kw = dict(steps=4, save_every=4, batch_size=4, warmup_steps=1)
  fast = train_and_evaluate(config_for(data_dir, **kw), str(tmp_path / 'fast'))
  slow = train_and_evaluate(config_for(data_dir, fast_path=False, **kw),
                                  str(tmp_path / 'slow'))
  a, b = params_of(tmp_path / 'fast'), params_of(tmp_path / 'slow')
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-5), a, b)
  assert fast['train']['step_loss'] == pytest.approx(slow['train']['step_loss'], abs=1e-5)


def _cli(*args):
  return subprocess.run([sys.executable, '-m', 'gradejax.train', *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)


def test_cli_names_a_wrong_config_key_and_a_missing_dataset(tmp_path):
  r = _cli('--config', 'configs/toy.py', '--workdir', str(tmp_path), '--config.stepz=3')
  assert r.returncode != 0 and "Unknown config key 'stepz'" in r.stderr
  assert "did you mean 'steps'?" in r.stderr
  missing = tmp_path / 'no_such_data'
  r = _cli('--config', 'configs/toy.py', '--workdir', str(tmp_path),
           f'--config.data_dir={missing}')
  assert r.returncode == 1 and 'Traceback' not in r.stderr  # one line (gradejax.errors)
  assert str(missing) in r.stderr and 'python -m gradejax.prepare' in r.stderr


def test_imbalance_policies_balance_the_classes():
  label = np.array([0, 0, 0, 0, 0, 0, 1, 1, 0])
  mask = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0], bool)  # the last row is held out
  c = toy.get_config()
  c.imbalance = 'oversample'
  probs, weight = train.sampling(c, label, mask, 2)
  assert probs[label == 0].sum() == pytest.approx(0.5) and probs[-1] == 0
  np.testing.assert_array_equal(weight, mask)
  c.imbalance = 'weighted'
  probs, weight = train.sampling(c, label, mask, 2)
  np.testing.assert_allclose(weight[:8], [8 / 12] * 6 + [2.0] * 2)  # n / (C * n_class)
  assert weight[-1] == 0 and probs[0] == pytest.approx(1 / 8)
  c.imbalance = 'bogus'
  with pytest.raises(ValueError, match='weighted, oversample or none'):
    train.sampling(c, label, mask, 2)


def test_label_randomisation_retrains_on_permuted_labels(full_run, tmp_path, monkeypatch):
  # The visualize CLI's retrain hook: same config, labels permuted by the seed, cached features
  # reused. The shuffled run records its seed, trains on exactly that permutation, and ends with
  # a different head.
  workdir, _ = full_run
  _, variables, config = runs.load_trained(workdir)
  params = train.retrain_on_shuffled_labels(str(workdir), config, seed=3)
  sub = workdir / 'sanity' / 'shuffled_labels'
  saved = json.loads((sub / 'config.json').read_text())
  assert saved['shuffle_labels_seed'] == 3 and saved['evaluate'] is False
  labels = input_pipeline.load_dataset(config)['label']
  permuted = np.random.default_rng(3).permutation(labels)
  assert not np.array_equal(permuted, labels)
  assert sorted(p.name for p in (sub / 'features').iterdir()) == sorted(
      p.name for p in (workdir / 'features').iterdir())
  before = jax.tree.leaves(variables['params']['head'])
  after = jax.tree.leaves(params['head'])
  assert len(before) == len(after)
  assert any(not np.allclose(a, b) for a, b in zip(before, after))
  # Exactly that permutation: an ordinary run (no shuffle_labels_seed) on data whose labels the
  # test itself permuted, same config, seed and features, must end with bit-identical params.
  load = input_pipeline.load_dataset

  def load_permuted(cfg):
    data = load(cfg)
    np.testing.assert_array_equal(data['label'], labels)
    return {**data, 'label': permuted.copy()}

  monkeypatch.setattr(input_pipeline, 'load_dataset', load_permuted)
  ref = tmp_path / 'permuted_by_test'
  shutil.copytree(workdir / 'features', ref / 'features')
  cfg = ml_collections.ConfigDict(config.to_dict())
  with cfg.unlocked():
    cfg.shuffle_labels_seed, cfg.evaluate = -1, False
  train_and_evaluate(cfg, str(ref))
  jax.tree.map(np.testing.assert_array_equal, params, params_of(ref)['params'])


def test_tensorboard_graph_is_the_forward_pass_scoped_by_module(full_run):
  # The Graphs dashboard's GraphDef, read back by tensorboard's own event reader.
  workdir, _ = full_run
  acc = event_accumulator.EventAccumulator(str(workdir / 'tb'))
  acc.Reload()
  graph = acc.Graph()
  nodes = {n.name: n for n in graph.node}
  module, variables, _ = runs.load_trained(workdir)
  # One conv node per convolution kernel of the face ResNet, each fed by its own kernel node in
  # its block's scope (GradeClassifier/extractor/level3/block1/...), so blocks fold. The stem's
  # kernel reaches its conv through the space-to-depth rewrite (pad, reshape, transpose: nets/
  # facenet.py), all in the stem's scope; every other conv reads its kernel node directly.
  from flax import traverse_util
  kernels = {k for k, v in traverse_util.flatten_dict(variables['params'], sep='/').items()
             if k.endswith('kernel') and v.ndim == 4}
  convs = [n for n in graph.node if n.op == 'conv_general_dilated']
  assert len(convs) == len(kernels) > 20
  layout = {'jit:_pad', 'pad', 'reshape', 'transpose'}

  def kernel_of(conv):
    chain, name = [], conv.input[1]  # the convolution's rhs
    while not name.endswith('/kernel'):
      node = nodes[name]
      assert node.op in layout and len(node.input) == 1, (conv.name, node.name, node.op)
      chain.append(node.name)
      name = node.input[0]
    return name, chain

  fed = {}
  for n in convs:
    kernel, chain = kernel_of(n)
    fed[kernel[len('GradeClassifier/'):]] = chain
    block = kernel.rsplit('/', 2)[0]  # GradeClassifier/extractor/level3/block1
    assert all(c.startswith(block + '/') for c in [n.name] + chain), (n.name, kernel, chain)
  assert set(fed) == kernels
  assert [k for k, chain in fed.items() if chain] == ['extractor/stem/conv/kernel']
  assert any(k.startswith('GradeClassifier/extractor/level3/block1/') for k in nodes)
  # The head: the logits come from head/out's matmul of the hidden layer.
  out = next(n for n in graph.node if n.name.startswith('GradeClassifier/head/out/dot_general'))
  assert 'GradeClassifier/head/out/kernel' in out.input
  assert nodes['images'].op == 'Placeholder'
  shapes = nodes['output_0'].input[0]
  dims = [d.size for d in nodes[shapes].attr['_output_shapes'].list.shape[0].dim]
  assert dims == [1, 2]  # [batch, classes]
  # Every edge points at a node of the graph.
  assert all(i in nodes for n in graph.node for i in n.input)


def test_tensorboard_projector_holds_the_descriptors_with_labels(full_run):
  from google.protobuf import text_format
  from tensorboard.plugins.projector import projector_config_pb2
  workdir, _ = full_run
  config = projector_config_pb2.ProjectorConfig()
  text_format.Parse((workdir / 'tb' / 'projector_config.pbtxt').read_text(), config)
  (emb,) = config.embeddings
  tensors = np.loadtxt(workdir / 'tb' / emb.tensor_path, delimiter='\t', ndmin=2)
  feats = np.load(next((workdir / 'features').glob('*.npz')))['features'][0]
  np.testing.assert_allclose(tensors, feats, rtol=1e-5, atol=1e-6)
  rows = (workdir / 'tb' / emb.metadata_path).read_text().splitlines()
  assert rows[0].split('\t') == ['class', 'fold', 'split']
  data = input_pipeline.load_dataset(runs.load_config(workdir))
  want = [[data['class_names'][k], str(f)] for k, f in zip(data['label'], data['fold'])]
  assert [r.split('\t')[:2] for r in rows[1:]] == want
  assert not emb.sprite.image_path  # no thumbnails of students unless config.log_images


def test_tensorboard_evaluation_metrics_and_verdict_text(evaluated_run):
  # The verdict as verdict/* values (the HParams metrics; tests/test_reruns.py reads them
  # through the plugin) and one text; no eval/* charts.
  workdir, _, metrics = evaluated_run
  acc = event_accumulator.EventAccumulator(str(workdir / 'tb'),
                                           size_guidance={event_accumulator.TENSORS: 0})
  acc.Reload()
  v = json.loads((workdir / 'eval' / 'verdict.json').read_text())
  tags = acc.Tags()['scalars']
  assert not [t for t in tags if t.startswith('eval/')]
  got = {t: acc.Scalars(t)[-1].value for t in tags if t.startswith('verdict/')}
  assert got['verdict/cv_score'] == pytest.approx(v['cv_score'], rel=1e-6)
  assert got['verdict/p_value'] == pytest.approx(v['p_value'], rel=1e-6)
  assert got['verdict/p_holm'] == pytest.approx(v['ledger']['p_holm'], rel=1e-6)
  assert (got['verdict/ci95_low'], got['verdict/ci95_high']) == pytest.approx(v['ci95'], rel=1e-6)
  assert got['verdict/baseline_majority_class'] == pytest.approx(
      v['baselines']['majority_class']['cv_score'], rel=1e-6)
  from tensorboard.util import tensor_util
  (event,) = acc.Tensors('verdict/text_summary')
  text = tensor_util.make_ndarray(event.tensor_proto).item().decode()
  txt = (workdir / 'eval' / 'verdict.txt').read_text().splitlines()
  assert [line.strip() for line in text.splitlines()] == [line.strip() for line in txt]
  assert metrics['verdict']['cv_score'] == v['cv_score']


def test_projector_thumbnails_only_when_asked(tmp_path):
  from google.protobuf import text_format
  from PIL import Image
  from tensorboard.plugins.projector import projector_config_pb2
  rng = np.random.default_rng(0)
  feats, images = rng.normal(size=(4, 3)), rng.integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
  meta = [['a', '0', 'train']] * 4
  for enabled in (False, True):
    w = train.Writer(tmp_path / str(enabled), enabled_images=enabled)
    w.embedding(feats, meta, ['class', 'fold', 'split'], 7, images)
    w.embedding(feats, meta, ['class', 'fold', 'split'], 7, images)  # a rerun adds no copy
    w.close()
    config = projector_config_pb2.ProjectorConfig()
    text_format.Parse((tmp_path / str(enabled) / 'projector_config.pbtxt').read_text(), config)
    (emb,) = config.embeddings
    assert bool(emb.sprite.image_path) == enabled
    if enabled:
      sprite = np.asarray(Image.open(tmp_path / str(enabled) / emb.sprite.image_path))
      assert list(emb.sprite.single_image_dim) == [32, 32] and sprite.shape[:2] == (64, 64)
      want = np.asarray(Image.fromarray(images[0]).resize((32, 32)))
      np.testing.assert_allclose(sprite[:32, :32, :3].astype(float), want, atol=1)

def _ce(logits, label):
  return float(jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, label)))


def test_unfreeze_head_input_and_constant_schedule_on_the_slow_path(data_dir, tmp_path):
  # The paths no other test takes, in one slow-path run: head_input='level2' (the trunk stops
  # there, 128 channels pooled), unfreeze='level2' (trained with the head), schedule='constant'
  # (optimizer='sgd' with level2 unfrozen: test_unfrozen_level2_trains_with_sgd_at_the_defaults).
  # level2 moves away from dlib's weights and nothing else does;
  # load_trained puts the trained level2 in place (not dlib's); the loaded model's loss on the
  # training split is the loss the run reported (computed by re-embedding the chips with the
  # trained level2); the learning rate logged is constant.
  from gradejax.nets import extractor
  from flax import traverse_util
  c = config_for(data_dir, fast_path=False, head_input='level2', unfreeze='level2',
                 optimizer='adam', schedule='constant', learning_rate=0.001, steps=2, save_every=1,
                 batch_size=4)
  metrics = train_and_evaluate(c, str(tmp_path))
  feats = np.load(next((tmp_path / 'features').glob('*.npz')))['features']
  assert feats.shape == (2, 24, 128) and runs.load_config(tmp_path).feature_dim == 128
  module, variables, config = runs.load_trained(tmp_path)
  _, dlib = extractor.load_face_resnet()
  got = traverse_util.flatten_dict(variables['params']['extractor'], sep='/')
  ref = traverse_util.flatten_dict(dlib['params'], sep='/')
  assert set(got) == set(ref)
  moved = [k for k in got if not np.array_equal(got[k], ref[k])]
  assert moved and all(k.startswith('level2/') for k in moved)
  data = input_pipeline.load_dataset(config)
  rows = data['fold'] != config.valid_fold
  logits = module.apply(variables, jnp.asarray(data['images'][rows], jnp.float32) / 255.0)
  assert _ce(logits, data['label'][rows]) == pytest.approx(metrics['train']['loss'], abs=1e-4)
  acc = event_accumulator.EventAccumulator(str(tmp_path / 'tb'))
  acc.Reload()
  assert [e.value for e in acc.Scalars('train/learning_rate')] == pytest.approx([0.001] * 2)


def test_sgd_and_constant_schedule_by_hand():
  # Two steps of optimizer='sgd' (decoupled weight decay added to the gradient, momentum 0.9)
  # at schedule='constant', against the update rule written out.
  c = toy.get_config()
  c.optimizer, c.schedule, c.learning_rate, c.weight_decay = 'sgd', 'constant', 0.2, 0.1
  assert [float(runs.learning_rate_fn(c)(t)) for t in (0, 7, 10 ** 6)] == pytest.approx([0.2] * 3)
  tx = runs.make_optimizer(c)
  p0, g = np.array([1.0, -2.0]), np.array([0.5, 0.5])
  state = tx.init(jnp.asarray(p0))
  p = jnp.asarray(p0)
  for _ in range(2):
    u, state = tx.update(jnp.asarray(g), state, p)
    p = optax.apply_updates(p, u)
  d1 = g + 0.1 * p0
  p1 = p0 - 0.2 * d1
  p2 = p1 - 0.2 * (g + 0.1 * p1 + 0.9 * d1)
  np.testing.assert_allclose(p, p2, rtol=1e-6)
  c.optimizer = 'rmsprop'
  with pytest.raises(ValueError, match='adam or sgd'):
    runs.make_optimizer(c)


def test_unfreeze_lr_scale_multiplies_only_the_extractor_updates():
  # optax's update for a {'head', 'extractor'} pytree with equal params and grads: the
  # extractor's is unfreeze_lr_scale times the head's (sgd with momentum and weight decay, two
  # steps, so the momentum and the decay are scaled too), and a head-only run's optimiser is
  # the plain one (its checkpoints keep their layout).
  c = toy.get_config()
  c.optimizer, c.schedule, c.learning_rate, c.weight_decay = 'sgd', 'constant', 0.2, 0.1
  c.unfreeze, c.unfreeze_lr_scale = 'level2', 0.25
  tx = runs.make_optimizer(c)
  p0 = jnp.array([1.0, -2.0])
  params = {'extractor': p0, 'head': p0}
  state = tx.init(params)
  for g in (jnp.array([0.5, 0.5]), jnp.array([-1.0, 0.3])):
    u, state = tx.update({'extractor': g, 'head': g}, state, params)
    np.testing.assert_allclose(u['extractor'], 0.25 * u['head'], rtol=1e-6)
    params = {'extractor': params['extractor'], 'head': optax.apply_updates(params['head'],
                                                                          u['head'])}
    params['extractor'] = params['head']  # keep them equal: same decay term next step
  assert np.all(u['head'] != 0)
  c.unfreeze = ''
  plain = runs.make_optimizer(c).init(p0)
  assert jax.tree.structure(plain) == jax.tree.structure(
      optax.chain(optax.add_decayed_weights(0.1),
                  optax.sgd(runs.learning_rate_fn(c), 0.9)).init(p0))


def test_check_finite_names_the_first_bad_step():
  # Step numbers are 1-based as logged: losses[i] of a chunk from step `start` is step
  # start + i + 1's.
  c = toy.get_config()
  fine = {'train': {'loss': 0.5}, 'valid': {}}
  train.check_finite(c, 10, np.array([1.0, 2.0]), fine)  # finite: no error
  with pytest.raises(FloatingPointError, match=r'minibatch loss of step 12 is inf'):
    train.check_finite(c, 10, np.array([1.0, np.inf, np.nan]), fine)
  with pytest.raises(FloatingPointError, match=r'valid-split loss after step 7 is nan'):
    train.check_finite(c, 5, np.array([1.0, 2.0]),
                       {'train': {'loss': 0.5}, 'valid': {'loss': float('nan')}})


def test_diverging_run_stops_at_the_first_nonfinite_step(data_dir, full_run, tmp_path):
  # An absurd learning rate on the fast path: the run stops with a message naming the step and
  # the fields to change; what it had checkpointed and logged before is finite and nothing
  # after that step is written. The step named is the first whose minibatch loss is NaN:
  # resumed from the checkpoint and logging every step, the run gets through the step before
  # with a finite minibatch loss and stops on its update (the split loss after it).
  import re
  shutil.copytree(full_run[0] / 'features', tmp_path / 'features')
  kw = dict(optimizer='sgd', schedule='constant', learning_rate=1e6, steps=8, save_every=2,
            log_every=2)
  with pytest.raises(FloatingPointError) as e:
    train.train(config_for(data_dir, **kw), tmp_path)
  msg = str(e.value)
  assert "optimizer='sgd'" in msg and 'learning_rate=1000000.0' in msg
  assert 'lower --config.learning_rate' in msg and 'try --config.optimizer=adam' in msg
  assert 'unfreeze' not in msg  # a head-only run: no unfreeze fields
  bad = int(re.search(r'minibatch loss of step (\d+) is nan', msg).group(1))
  assert not (tmp_path / 'metrics.json').exists()
  saved = sorted(int(p.name) for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit())
  assert saved and max(saved) < bad  # a checkpoint before the divergence, none after
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(params_of(tmp_path)))
  acc = event_accumulator.EventAccumulator(str(tmp_path / 'tb'))
  acc.Reload()
  logged = [e for t in acc.Tags()['scalars'] for e in acc.Scalars(t)]
  assert logged and all(np.isfinite(e.value) and e.step < bad for e in logged)
  with pytest.raises(FloatingPointError, match=rf'train-split loss after step {bad - 1} is nan'):
    train.train(config_for(data_dir, **{**kw, 'steps': bad - 1, 'log_every': 1}), tmp_path)


def test_unfrozen_level2_trains_with_sgd_at_the_defaults(data_dir, full_run, tmp_path):
  # The default learning rate and unfreeze_lr_scale with sgd and level2 unfrozen: every logged
  # minibatch loss is finite and no larger than an untrained head's on these photos (measured,
  # learning_rate 0, 30 steps: at most 2.5), level2 moves away from dlib's weights. Without the
  # multiplier (unfreeze_lr_scale=1) the same run logs 0.9, 34 and 7.6e8 (1.5e9 at step 6).
  from gradejax.nets import extractor
  from flax import traverse_util
  shutil.copytree(full_run[0] / 'features', tmp_path / 'features')
  c = config_for(data_dir, fast_path=False, unfreeze='level2', optimizer='sgd', steps=6,
                 save_every=6, log_every=2, batch_size=8)
  assert c.learning_rate == 1e-3 and c.unfreeze_lr_scale == 1e-3  # the defaults
  metrics = train_and_evaluate(c, str(tmp_path))
  acc = event_accumulator.EventAccumulator(str(tmp_path / 'tb'))
  acc.Reload()
  step_loss = [e.value for e in acc.Scalars('train/step_loss')]
  assert len(step_loss) == 3 and max(step_loss) < 3.0
  assert np.isfinite(metrics['train']['loss']) and np.isfinite(metrics['valid']['loss'])
  _, dlib = extractor.load_face_resnet()
  got = traverse_util.flatten_dict(params_of(tmp_path)['params']['extractor'], sep='/')
  ref = traverse_util.flatten_dict(dlib['params'], sep='/')
  assert any(not np.array_equal(got[k], ref[k]) for k in got if k.startswith('level2/'))
