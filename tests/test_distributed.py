"""Two local processes with two CPU devices each (jax.distributed, coordinator on 127.0.0.1) give
the results of one process: feature visualisation sharded over the 4-device global mesh,
dataset examples and attribution maps split over the processes and gathered, each process
reading only its share of the prepared TFDS data, the attribution report (sanity checks with
label randomisation, faithfulness, held-out-fold localisation, causal check) with the same
numbers, and the label-randomisation re-training of a real run. A second pair joins through
GRADEJAX_JAX_INIT=1 and JAX's own SLURM detection."""
import json
import pathlib
import re
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from gradejax import distributed, nets
from gradejax.data import dataset, manifest
from gradejax.optvis import dataset_examples, objectives as O, param as P, render as R
from gradejax.optvis import transform as T
from gradejax import visualize
from gradejax.attribution.battery import maps as battery_maps
from helpers import ROOT, child_env
from test_attribution_cli import ToyClassifier, toy_cue_mask
from test_featurevis import Conv

UNITS = np.arange(6)  # 6 units on 4 devices: padded to 8, so the padding path is crossed too
METHODS = ('saliency', 'occlusion', 'smoothgrad')  # occlusion: a patch map; smoothgrad: a key
N_EXAMPLES = 9  # odd: the processes' shares differ in size (5 and 4)
N_DATA, CHIP = 13, 16  # the prepared toy data: 13 chips (shares 7 and 6), 16 px
# smoothgrad: one key per call, so the fold's batches must be the one-process batches
REPORT = dict(methods=('smoothgrad',), images='5', n_samples=2, faithfulness_steps=2,
              sanity_images=2, batch=3, bootstrap=20, causal_size=4, causal_random=2,
              road_fractions=(0.5,))

# The same computation in every process and in the test: a toy net, few steps.
SETUP = """
import jax, numpy as np
from test_featurevis import Conv
from gradejax import nets
from gradejax.optvis import objectives as O, param as P, render as R, transform as T
from gradejax import visualize
from gradejax.attribution.battery import maps as battery_maps
m = Conv(); x = jax.random.uniform(jax.random.key(0), (4, 24, 24, 3))
fn = nets.bind(m, m.init(jax.random.key(1), x))
settings = R.Settings(steps=6, robustness=T.Robustness(pad=2, jitter=2, scale=(0.9, 1.1), rotate=5))
examples = np.asarray(jax.random.uniform(jax.random.key(2), ({n}, 24, 24, 3)))
opts = visualize.Options(methods={methods!r}, n_samples=2, patch=8, stride=8).config()
"""


def toy_report(work, data, retrain_collective: bool):
  """The attribution report of a toy classifier on the prepared toy data (lazy images), with a
  label-randomisation hook that re-trains the head on shuffled labels: a collective in a
  multi-host run (every process must call it, as train.retrain_on_shuffled_labels)."""
  import jax.numpy as jnp
  import optax
  module = ToyClassifier()
  variables = module.init(jax.random.key(0), jnp.zeros((1, CHIP, CHIP, 3)))
  arrays = dataset.load_arrays(data, images='lazy')

  def retrain():
    if retrain_collective:
      distributed.sync('toy retrain')  # hangs (the test times out) unless every process comes
    x = np.asarray(arrays['images'][:]).astype(np.float32) / 255
    y = np.random.default_rng(3).permutation(arrays['label'])
    loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(
        module.apply({'params': p}, x), y).mean()
    p = variables['params']
    for _ in range(5):
      p = jax.tree.map(lambda a, g: a - 0.5 * g, p, jax.grad(loss)(p))
    return p

  opts = visualize.Options(**REPORT)
  return visualize.make_report(work, module, variables, arrays, data, opts,
                                        cue_mask_fn=toy_cue_mask, retrain=retrain)


START = """
import json, pathlib, sys
a = json.loads(sys.argv[1])
sys.path.insert(0, a['tests'])
from gradejax import distributed
assert distributed.initialize()  # from the GRADEJAX_ (or, GRADEJAX_JAX_INIT=1, SLURM_) variables
import jax
import numpy as np
from gradejax.data import dataset
p = jax.process_index()
mine = dataset.load_share(a['data'])  # this process's share of the prepared data, only
out = {'share_' + k: mine[k] for k in ('images', 'id', 'rows', 'label', 'fold')}
out['sum'] = distributed.gather(jax.jit(lambda v: v.sum(), out_shardings=distributed.replicated(
    distributed.global_mesh()))(distributed.put(np.arange(8.0), jax.sharding.NamedSharding(
        distributed.global_mesh(), jax.sharding.PartitionSpec('batch')))))
"""
END = """
np.savez(a['out'] + f'{p}.npz', **out)
print(json.dumps({'devices': jax.device_count(), 'local': jax.local_device_count(),
                  'processes': jax.process_count(), 'main': distributed.is_main()}))
"""
CHILD = START + """
exec(a['setup'])
from gradejax.optvis import dataset_examples
img, hist = R.render_sharded(fn, lambda u: O.channel_batch('conv2', u), P.fourier(24, 24),
                             np.arange(6), jax.random.key(3), settings)
out.update(img=img, hist=hist)
share = distributed.split(len(examples))
top = dataset_examples.top_k_across_processes(fn, examples[share], 'conv2', np.arange(6), k=2,
                                              start=share.start, total=len(examples))
shown, top_index = dataset_examples.gather_examples(examples[share], share.start, top['index'])
targets = np.zeros(len(examples), np.int32)
maps, skipped = battery_maps.shown_maps(fn, examples, targets, opts,
                                        battery_maps.Inputs(opts, 'conv2'))
out.update(skipped=len(skipped), shown=shown, shown_index=top_index,
           **{'top_' + k: v for k, v in top.items()}, **{'map_' + k: v for k, v in maps.items()})
import test_distributed
test_distributed.toy_report(pathlib.Path(a['work']), pathlib.Path(a['data']), True)
from gradejax.training import runs, train
params = train.retrain_on_shuffled_labels(a['run'], runs.load_config(a['run']), 3)
out.update({'retrained_' + str(i): np.asarray(v) for i, v in enumerate(jax.tree.leaves(params))})
""" + END


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _launch(args: dict, envs: list[dict], code: str = CHILD, timeout: int = 300):
  """Runs ``code`` in one process per env; -> (their JSON lines, their npz files)."""
  children = []
  try:
    for env in envs:
      children.append(subprocess.Popen(
          [sys.executable, '-c', code, json.dumps(args)], text=True, stdout=subprocess.PIPE,
          stderr=subprocess.PIPE, env=child_env(XLA_FLAGS='--xla_force_host_platform_device_count=2',
                                                JAX_PLATFORMS='cpu', **env)))
    results = [c.communicate(timeout=timeout) for c in children]
  finally:
    for c in children:
      if c.poll() is None:
        c.kill()
        c.wait()
  for c, (_, err) in zip(children, results):
    assert c.returncode == 0, err[-3000:]
  info = [json.loads(o.strip().splitlines()[-1]) for o, _ in results]
  return info, [dict(np.load(f'{args["out"]}{p}.npz')) for p in range(len(envs))]


def _write_chips(data: pathlib.Path, n: int, size: int, folds: int, seed: int):
  """A prepared-data folder in the contract's format (chips, manifest.csv, TFDS)."""
  rng = np.random.default_rng(seed)
  entries, truth = [], []
  for i in range(n):
    sid, label = f's{i:02d}', i % 2
    rel = f'chips/c{label}/{sid}.png'
    (data / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(data / rel)
    entries.append(manifest.Entry(source_row=i + 2, id=sid, grade=3.0 + label, status='used',
                                  label=label, class_name=f'c{label}', file=rel, fold=i % folds,
                                  face_box=(0, 0, 40, 40), detector_score=1.0,
                                  chip_affine=np.array([[0.5, 0, -2], [0, 0.5, -4]])))
    truth.append(f'{sid},1,8 12 20 24')  # every chip carries the cue (chip px [2, 8)^2)
  manifest.write(data / 'manifest.csv', entries)
  (data / 'truth.csv').write_text('id,cue,cue_box\n' + '\n'.join(truth) + '\n')
  dataset.build(data, ('c0', 'c1'), chip_size=size)


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  root = tmp_path_factory.mktemp('prepared')
  _write_chips(root / 'data', N_DATA, CHIP, folds=2, seed=0)  # fold 0: 7 images
  for w in ('two', 'one'):
    (root / w / 'eval').mkdir(parents=True)
    (root / w / 'eval' / 'verdict.json').write_text(json.dumps({'verdict': 'toy'}))
  return root


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
  """A real (tiny) training run on 150 px chips: the input of the label-randomisation
  re-training. Two copies: one for the two processes, one for the one-process reference."""
  from configs import toy
  from gradejax.training import train
  root = tmp_path_factory.mktemp('run')
  _write_chips(root / 'data', 8, 150, folds=2, seed=1)
  c = toy.get_config()
  c.data_dir, c.evaluate, c.pivot, c.cv_folds = str(root / 'data'), False, None, 2
  c.steps, c.save_every, c.log_every, c.warmup_steps, c.batch_size = 2, 2, 2, 1, 4
  train.train(c, root / 'a')
  shutil.copytree(root / 'a', root / 'b')
  return root / 'a', root / 'b'


@pytest.fixture(scope='module')
def two_processes(tmp_path_factory, prepared, trained_run):
  out = tmp_path_factory.mktemp('dist') / 'p'
  args = dict(tests=str(ROOT / 'tests'), out=str(out), data=str(prepared / 'data'),
              work=str(prepared / 'two'), run=str(trained_run[0]),
              setup=SETUP.format(n=N_EXAMPLES, methods=METHODS))
  port = _free_port()
  return _launch(args, [dict(GRADEJAX_COORDINATOR=f'127.0.0.1:{port}', GRADEJAX_NUM_PROCESSES='2',
                             GRADEJAX_PROCESS_ID=str(pid)) for pid in range(2)])


@pytest.fixture(scope='module')
def one_process():
  """The reference: this test's own process (one CPU device), the same code."""
  ns = {}
  exec(SETUP.format(n=N_EXAMPLES, methods=METHODS), ns)
  fn, settings, examples, opts = ns['fn'], ns['settings'], ns['examples'], ns['opts']
  img, hist = R.render_sharded(fn, lambda u: O.channel_batch('conv2', u), P.fourier(24, 24),
                               UNITS, jax.random.key(3), settings)
  top = dataset_examples.top_k(fn, examples, 'conv2', UNITS, k=2)
  maps, _ = battery_maps.shown_maps(fn, examples, np.zeros(len(examples), np.int32), opts,
                                    battery_maps.Inputs(opts, 'conv2'))
  return np.asarray(img), np.asarray(hist), top, maps, examples


def test_two_processes_see_one_global_mesh(two_processes):
  info, res = two_processes
  assert [i['main'] for i in info] == [True, False]
  assert all(i == dict(info[0], main=i['main']) for i in info)
  assert info[0] == {'devices': 4, 'local': 2, 'processes': 2, 'main': True}
  assert [float(r['sum']) for r in res] == [28.0, 28.0]  # one reduction over the global mesh


def test_featurevis_images_equal_one_process(two_processes, one_process):
  _, res = two_processes
  img, hist, _, _, _ = one_process
  assert img.shape == (6, 24, 24, 3)
  # Both processes hold the gathered images, bit for bit the same.
  np.testing.assert_array_equal(res[0]['img'], res[1]['img'])
  np.testing.assert_array_equal(res[0]['hist'], res[1]['hist'])
  # Against one process on one device: each image's optimisation is its own (own key, the
  # per-image objective), so only the per-device batch differs (2 vs 8 images); XLA's CPU
  # convolutions may then round differently in the last bits, nothing more. Observed: equal.
  np.testing.assert_allclose(res[0]['img'], img, rtol=0, atol=1e-6)
  np.testing.assert_allclose(res[0]['hist'], hist, rtol=1e-5, atol=1e-6)
  assert np.abs(img[0] - img[1]).max() > 0.01  # the units differ: a real comparison


def test_dataset_examples_and_maps_equal_one_process(two_processes, one_process):
  _, res = two_processes
  _, _, top, maps, examples = one_process
  for r in res:
    np.testing.assert_array_equal(r['shown_index'].shape, top['index'].shape)
    # The top images, gathered from the process holding each, are the one-process ones.
    np.testing.assert_array_equal(r['shown'][r['shown_index']], examples[top['index']])
    np.testing.assert_allclose(r['top_score'], top['score'], rtol=1e-6)
    np.testing.assert_array_equal(r['top_position'], top['position'])
    assert int(r['skipped']) == 0
    for m in METHODS:  # gathered in image order; rows of 5 and 4 images (see N_EXAMPLES)
      assert r[f'map_{m}'].shape == maps[m].shape == (N_EXAMPLES, 24, 24)
      np.testing.assert_allclose(r[f'map_{m}'], maps[m], rtol=1e-5, atol=1e-7, err_msg=m)
  for name in ('index', 'score', 'position'):
    np.testing.assert_array_equal(res[0][f'top_{name}'], res[1][f'top_{name}'])
  np.testing.assert_array_equal(res[0]['top_index'], top['index'])
  assert len(set(top['index'].ravel())) > 2  # the units pick different examples
  assert set(top['index'].ravel()) & set(range(5)) and set(top['index'].ravel()) - set(range(5))


def test_each_process_reads_exactly_its_share(two_processes, prepared):
  _, res = two_processes
  full = dataset.load_arrays(prepared / 'data')
  for p, r in enumerate(res):
    share = distributed.split(N_DATA, p, 2)
    assert r['share_rows'].tolist() == list(range(N_DATA))[share]
    np.testing.assert_array_equal(r['share_images'], full['images'][share])
    for k in ('id', 'label', 'fold'):
      np.testing.assert_array_equal(r[f'share_{k}'], full[k][share])
  assert [len(r['share_rows']) for r in res] == [7, 6]
  # In one process the share is everything; a slice reads that slice, lazily as well.
  one = dataset.load_share(prepared / 'data')
  np.testing.assert_array_equal(one['images'], full['images'])
  lazy = dataset.load_arrays(prepared / 'data', images='lazy')
  np.testing.assert_array_equal(lazy['images'][[4, 1]], full['images'][[4, 1]])
  assert len(lazy['images']) == N_DATA and lazy['images'].shape == full['images'].shape


def _tables(html: str) -> list[str]:
  return re.findall(r'<table.*?</table>', html, flags=re.S)


def test_report_numbers_equal_one_process(two_processes, prepared):
  one = toy_report(prepared / 'one', prepared / 'data', False).read_text(encoding='utf-8')
  two = (prepared / 'two' / 'report' / 'index.html').read_text(encoding='utf-8')
  tables = _tables(one)
  for section in ('labels shuffled', 'deletion AUC', 'pointing game [95% CI]', 'score drop'):
    assert section in one, section
  assert len(tables) >= 6 and _tables(two) == tables
  # The fold's 7 images in calls of 3: process 0 takes 2 calls (6 images), process 1 one (1).
  assert 'all 7 cue-bearing images of the held-out fold 0' in two
  # Process 1 wrote nothing: only process 0's files exist (one report).
  assert sorted(p.name for p in (prepared / 'two' / 'report').iterdir()) == sorted(
      p.name for p in (prepared / 'one' / 'report').iterdir())


def test_label_randomisation_retrains_once_for_every_process(two_processes, trained_run):
  from gradejax.training import runs, train
  _, res = two_processes
  ref = jax.tree.leaves(train.retrain_on_shuffled_labels(
      trained_run[1], runs.load_config(trained_run[1]), 3))
  for r in res:
    got = [r[f'retrained_{i}'] for i in range(len(ref))]
    assert f'retrained_{len(ref)}' not in r
    for a, b in zip(got, ref):
      np.testing.assert_array_equal(a, np.asarray(b))
  _, trained, _ = runs.load_trained(trained_run[1])
  assert any(not np.array_equal(a, b) for a, b in zip(
      ref, jax.tree.leaves(trained['params'])))  # the shuffled labels changed the head


def test_jax_init_finds_a_slurm_job(tmp_path, prepared, two_processes):
  # GRADEJAX_JAX_INIT=1: jax.distributed.initialize() with no arguments, which detects SLURM
  # from its variables (jax/_src/clusters/slurm_cluster.py): the coordinator is the first node
  # of SLURM_STEP_NODELIST on port 61440 + SLURM_JOB_ID % 4096, process count and index from
  # SLURM_NTASKS and SLURM_PROCID. A job id whose port is free here makes it a real job.
  port = next(p for p in range(61440 + 1000, 65536) if _port_free(p))
  slurm = dict(GRADEJAX_JAX_INIT='1', SLURM_JOB_ID=str(port - 61440 + 4096 * 7),
               SLURM_STEP_NODELIST='localhost', SLURM_NTASKS='2', SLURM_STEP_NUM_NODES='1')
  args = dict(tests=str(ROOT / 'tests'), out=str(tmp_path / 's'), data=str(prepared / 'data'))
  info, res = _launch(args, [dict(slurm, SLURM_PROCID=str(p), SLURM_LOCALID=str(p))
                             for p in range(2)], START + END)
  assert info == two_processes[0]  # one 2-process run: 4 devices, process 0 is main
  for got, want in zip(res, two_processes[1]):  # the explicit-coordinator run's results
    for k in ('sum', 'share_rows', 'share_images'):  # a global-mesh reduction, the shares
      np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def _port_free(port: int) -> bool:
  with socket.socket() as s:
    try:
      s.bind(('127.0.0.1', port))
      return True
    except OSError:
      return False


def test_jax_init_with_no_cluster_says_so():
  # Nothing to detect: the error names the switch and what to set instead.
  code = ('from gradejax import distributed\n'
          'try:\n  distributed.initialize()\nexcept RuntimeError as e:\n  print(e)\n')
  env = {k: v for k, v in child_env(GRADEJAX_JAX_INIT='1', JAX_PLATFORMS='cpu').items()
         if not k.startswith(('SLURM_', 'OMPI_', 'TPU_', 'KUBERNETES_', 'GRADEJAX_COORD'))}
  run = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                       timeout=120)
  assert run.returncode == 0, run.stderr[-2000:]
  assert 'GRADEJAX_JAX_INIT' in run.stdout and 'GRADEJAX_COORDINATOR' in run.stdout


def test_split_is_contiguous_and_complete():
  # grain's even split as used here: 9 items over 2 processes -> 5 + 4, in order.
  assert [distributed.split(9, p, 2) for p in range(2)] == [slice(0, 5), slice(5, 9)]
  assert [distributed.split(2, p, 3) for p in range(3)] == [slice(0, 1), slice(1, 2), slice(2, 2)]
  assert distributed.split(9) == slice(0, 9)  # one process: all of it
  # Whole batches: 7 images in batches of 2 (4 calls) -> calls 0-1 and 2-3 -> rows 0-4, 4-7.
  assert [distributed.batch_split(7, 2, p, 2) for p in range(2)] == [slice(0, 4), slice(4, 7)]
  assert [distributed.batch_split(3, 4, p, 2) for p in range(2)] == [slice(0, 3), slice(3, 3)]
  assert distributed.initialize() is False  # nothing in the environment: one process
  assert distributed.gather_rows(np.arange(3), 3).tolist() == [0, 1, 2]
