"""Two local processes with two CPU devices each (jax.distributed, coordinator on 127.0.0.1) give
the results of one process: feature visualisation sharded over the 4-device global mesh,
dataset examples and attribution maps split over the processes and gathered."""
import json
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from gradejax import distributed, nets
from gradejax.featurevis import dataset_examples, objectives as O, param as P, render as R
from gradejax.featurevis import transform as T
from gradejax.report import attribution_report
from helpers import ROOT, child_env
from test_featurevis import Conv

UNITS = np.arange(6)  # 6 units on 4 devices: padded to 8, so the padding path is crossed too
METHODS = ('saliency', 'occlusion', 'smoothgrad')  # occlusion: a patch map; smoothgrad: a key
N_EXAMPLES = 9  # odd: the processes' shares differ in size (5 and 4)

# The same computation in every process and in the test: a toy net, few steps.
SETUP = """
import jax, numpy as np
from test_featurevis import Conv
from gradejax import nets
from gradejax.featurevis import objectives as O, param as P, render as R, transform as T
from gradejax.report import attribution_report
m = Conv(); x = jax.random.uniform(jax.random.key(0), (4, 24, 24, 3))
fn = nets.bind(m, m.init(jax.random.key(1), x))
settings = R.Settings(steps=6, robustness=T.Robustness(pad=2, jitter=2, scale=(0.9, 1.1), rotate=5))
examples = np.asarray(jax.random.uniform(jax.random.key(2), ({n}, 24, 24, 3)))
opts = attribution_report.Options(methods={methods!r}, n_samples=2, patch=8, stride=8)
"""

CHILD = """
import json, sys
sys.path.insert(0, {tests!r})
from gradejax import distributed
assert distributed.initialize()  # from GRADEJAX_COORDINATOR / _NUM_PROCESSES / _PROCESS_ID
""" + SETUP + """
import jax
img, hist = R.render_sharded(fn, lambda u: O.channel_batch('conv2', u), P.fourier(24, 24),
                             np.arange(6), jax.random.key(3), settings)
from gradejax.featurevis import dataset_examples
top = dataset_examples.top_k_across_processes(fn, examples, 'conv2', np.arange(6), k=2)
targets = np.zeros(len(examples), np.int32)
maps, skipped = attribution_report._all_maps(fn, examples, targets, opts, 'conv2')
np.savez({out!r} + f'{{jax.process_index()}}.npz', img=img, hist=hist, skipped=len(skipped),
         **{{'top_' + k: v for k, v in top.items()}}, **{{'map_' + k: v for k, v in maps.items()}})
print(json.dumps({{'devices': jax.device_count(), 'local': jax.local_device_count(),
                  'processes': jax.process_count(), 'main': distributed.is_main()}}))
"""


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def two_processes(tmp_path_factory):
  out = tmp_path_factory.mktemp('dist') / 'p'
  code = CHILD.format(tests=str(ROOT / 'tests'), out=str(out), n=N_EXAMPLES, methods=METHODS)
  port = _free_port()
  children = []
  try:
    for pid in range(2):
      env = child_env(XLA_FLAGS='--xla_force_host_platform_device_count=2', JAX_PLATFORMS='cpu',
                      GRADEJAX_COORDINATOR=f'127.0.0.1:{port}', GRADEJAX_NUM_PROCESSES='2',
                      GRADEJAX_PROCESS_ID=str(pid))
      children.append(subprocess.Popen([sys.executable, '-c', code], env=env, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = [c.communicate(timeout=240) for c in children]
  finally:
    for c in children:
      if c.poll() is None:
        c.kill()
        c.wait()
  for c, (_, err) in zip(children, results):
    assert c.returncode == 0, err[-3000:]
  info = [json.loads(o.strip().splitlines()[-1]) for o, _ in results]
  return info, [dict(np.load(f'{out}{p}.npz')) for p in range(2)]


@pytest.fixture(scope='module')
def one_process():
  """The reference: this test's own process (one CPU device), the same code."""
  ns = {}
  exec(SETUP.format(n=N_EXAMPLES, methods=METHODS), ns)
  fn, settings, examples, opts = ns['fn'], ns['settings'], ns['examples'], ns['opts']
  img, hist = R.render_sharded(fn, lambda u: O.channel_batch('conv2', u), P.fourier(24, 24),
                               UNITS, jax.random.key(3), settings)
  top = dataset_examples.top_k(fn, examples, 'conv2', UNITS, k=2)
  maps, _ = attribution_report._all_maps(fn, examples, np.zeros(len(examples), np.int32), opts,
                                         'conv2')
  return np.asarray(img), np.asarray(hist), top, maps


def test_two_processes_see_one_global_mesh(two_processes):
  info, _ = two_processes
  assert [i['main'] for i in info] == [True, False]
  assert all(i == dict(info[0], main=i['main']) for i in info)
  assert info[0] == {'devices': 4, 'local': 2, 'processes': 2, 'main': True}


def test_featurevis_images_equal_one_process(two_processes, one_process):
  _, res = two_processes
  img, hist, _, _ = one_process
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
  _, _, top, maps = one_process
  for r in res:
    np.testing.assert_array_equal(r['top_index'], top['index'])
    np.testing.assert_allclose(r['top_score'], top['score'], rtol=1e-6)
    np.testing.assert_array_equal(r['top_position'], top['position'])
    assert int(r['skipped']) == 0
    for m in METHODS:  # gathered in image order; rows of 5 and 4 images (see N_EXAMPLES)
      assert r[f'map_{m}'].shape == maps[m].shape == (N_EXAMPLES, 24, 24)
      np.testing.assert_allclose(r[f'map_{m}'], maps[m], rtol=1e-5, atol=1e-7, err_msg=m)
  assert len(set(top['index'].ravel())) > 2  # the units pick different examples


def test_split_is_contiguous_and_complete():
  # grain's even split as used here: 9 items over 2 processes -> 5 + 4, in order.
  assert [distributed.split(9, p, 2) for p in range(2)] == [slice(0, 5), slice(5, 9)]
  assert [distributed.split(2, p, 3) for p in range(3)] == [slice(0, 1), slice(1, 2), slice(2, 2)]
  assert distributed.split(9) == slice(0, 9)  # one process: all of it
  assert distributed.initialize() is False  # nothing in the environment: one process
  assert distributed.gather_rows(np.arange(3), 3).tolist() == [0, 1, 2]
