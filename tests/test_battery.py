"""The attribution battery as a library: its config (per-method sub-configs holding only what
each method takes, the report's choices as defaults), the localisation target, and the import
direction (the report renders and imports no training code; libraries no command)."""
import ast
import inspect
import pathlib

import numpy as np

from gradejax.attribution import battery, registry
from gradejax.attribution.battery import checks
from gradejax.attribution.battery.config import Localisation

ROOT = pathlib.Path(__file__).resolve().parents[1] / 'gradejax'


def test_config_has_one_sub_config_per_method_with_only_its_own_options():
  cfg = battery.Options(methods=tuple(registry.METHODS)).config()
  assert set(cfg.method_options) == set(registry.METHODS)
  for name, kw in cfg.method_options.items():
    extra = set(kw) - set(registry.options_for(name, dict(kw)))
    assert not extra, f'{name}: options it does not take: {extra}'
  occ = cfg.method_options['occlusion']
  assert (occ['patch'], occ['stride'], occ['aggregate'], occ['fill_mode']) == (
      24, 8, 'centre', 'inpaint')
  assert cfg.method_options['integrated_gradients'] == {'steps': 32}
  assert cfg.method_options['xrai'] == {'base': 'integrated_gradients', 'steps': 32}
  assert dict(cfg.fill) == dict(fill=0.5, fill_mode='inpaint', blur_sigma=5.0)
  assert battery.Options().config().methods == battery.DEFAULT_METHODS


def test_fold_localisation_target_needs_pointing_and_mass_both():
  # 4 images 10 x 10, the cue the top-left 2 x 2 (area share 0.04): a map peaking on the cue
  # with little mass inside points well but is not concentrated.
  masks = np.zeros((4, 10, 10), bool)
  masks[:, :2, :2] = True
  spread = np.ones((4, 10, 10), np.float32)
  spread[:, 0, 0] = 5.0  # maximum on the cue, mass inside 8 / 104 = 1.9x uniform
  tight = np.zeros((4, 10, 10), np.float32)
  tight[:, :2, :2] = 1.0  # all mass inside: 25x uniform
  off = np.zeros((4, 10, 10), np.float32)
  off[:, :2, :2] = 1.0
  off[:, 9, 9] = 2.0  # mass inside 4 / 6 (16.7x) but the maximum far away
  cfg = Localisation(bootstrap=20, pointing_tolerance=0.0)
  rows = {r.method: r for r in checks.localisation_rows(
      {'spread': spread, 'tight': tight, 'off': off}, masks, cfg)}
  assert rows['spread'].pointing[0] == 1.0 and rows['spread'].mass[0] < 10 * 0.04
  assert rows['off'].pointing[0] == 0.0 and rows['off'].mass[0] > 10 * 0.04
  assert rows['tight'].meets and not rows['spread'].meets and not rows['off'].meets
  assert [r.method for r in checks.localisation_rows(
      {'spread': spread, 'tight': tight, 'off': off}, masks, cfg)][-1] == 'off'


def _imports(path: pathlib.Path) -> set[str]:
  names = set()
  for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
    if isinstance(node, ast.Import):
      names |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      names |= {node.module} | {f'{node.module}.{a.name}' for a in node.names}
  return names


def test_import_direction_report_renders_and_libraries_hold_no_command():
  report = [p for p in (ROOT / 'report').glob('*.py')]
  for p in report:
    bad = {n for n in _imports(p) if n.startswith(('gradejax.training', 'gradejax.train',
                                                   'gradejax.evaluation'))}
    assert not bad, f'{p.name} imports {bad}'
  # The attribution report computes nothing: no JAX, no method called, only the result read.
  assert not {n for n in _imports(ROOT / 'report' / 'attribution_report.py')
              if n.split('.')[0] == 'jax' or n.startswith('gradejax.attribution.battery.run')}
  commands = ('gradejax.visualize', 'gradejax.featurevis', 'gradejax.train',
              'gradejax.prepare', 'gradejax.evaluate')
  for lib in ('attribution', 'optvis', 'report', 'nets', 'data'):
    for p in (ROOT / lib).rglob('*.py'):
      bad = {n for n in _imports(p) if n in commands or n.startswith('gradejax.report')
             and lib in ('attribution', 'optvis', 'nets', 'data')}
      assert not bad, f'{lib}/{p.name} imports {bad}'
      assert 'app.run(' not in p.read_text(encoding='utf-8') or lib == 'data', p
  assert inspect.signature(battery.run).parameters['retrain'].default is None


def _tiny_net():
  """A conv tap 'features' and a dense 'logits' head: the smallest net the battery maps."""
  import flax.linen as nn
  import jax.numpy as jnp
  from gradejax import nets

  class Tiny(nn.Module):
    @nn.compact
    def __call__(self, images, *, relu=nn.relu):
      x = nets.tap(self, 'features', relu(nn.Conv(3, (3, 3))(images)))
      return nets.tap(self, 'logits', nn.Dense(2)(jnp.mean(x, axis=(1, 2))))

  return Tiny()


def test_fold_maps_pad_the_short_last_batch_and_compile_no_second_program():
  import jax
  from gradejax import nets
  from gradejax.attribution.battery import maps

  m = _tiny_net()
  x = np.asarray(jax.random.uniform(jax.random.key(0), (7, 12, 12, 3)))
  fn = nets.bind(m, m.init(jax.random.key(1), x[:1]))
  t = np.array([0, 1, 0, 1, 1, 0, 1], np.int32)
  cfg = battery.Options(methods=('occlusion',), patch=4, stride=4, fill_mode='value').config()
  inputs = maps.Inputs(cfg, 'features')
  compiles = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda event, secs, **kw: compiles.append(event) if 'backend_compile' in event else None)
  first = maps.fold_maps('occlusion', fn, x[:4], t[:4], 4, inputs)  # compiles for batch 4
  before = len(compiles)
  got = maps.fold_maps('occlusion', fn, x, t, 4, inputs)  # 4 + 3 (padded to 4)
  assert len(compiles) == before, 'the short last batch compiled a second program'
  want = np.asarray(registry.heatmap('occlusion', fn, x, t, **inputs('occlusion', fn, x)))
  assert got.shape == (7, 12, 12)
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(got[:4], first)


def test_sanity_reuses_the_trained_maps_and_gets_the_same_rows():
  import jax
  from gradejax import nets
  from gradejax.attribution.battery import maps

  m = _tiny_net()
  x = np.asarray(jax.random.uniform(jax.random.key(0), (3, 8, 8, 3)))
  variables = m.init(jax.random.key(1), x[:1])
  fn = nets.bind(m, variables)
  t = np.array([0, 1, 1], np.int32)
  cfg = battery.Options(methods=('saliency', 'grad_cam'), sanity_images=2).config()
  inputs = maps.Inputs(cfg, 'features')
  shown = {k: np.asarray(inputs.heatmap_fn(k)(fn, x, t)) for k in cfg.methods}
  calls = []
  counted = maps.Inputs(cfg, 'features')
  counted.heatmap_fn = lambda k: (lambda f, xb, tb: calls.append(k) or inputs.heatmap_fn(k)(
      f, xb, tb))
  retrain = lambda: jax.tree.map(lambda a: -a, variables['params'])
  reused = checks.sanity_check(m, variables, x, t, cfg.methods, cfg, counted, retrain, shown)
  n_reused = len(calls)
  calls.clear()
  fresh = checks.sanity_check(m, variables, x, t, cfg.methods, cfg, counted, retrain)
  # Per method: 2 cascade stages (Conv_0, Dense_0) + the label check, and 2 references.
  assert (n_reused, len(calls)) == (2 * 3, 2 * 5)
  for a, b in zip(reused.rows, fresh.rows):
    assert (a.method, a.stage, a.flagged) == (b.method, b.stage, b.flagged)
    np.testing.assert_allclose([a.spearman, a.spearman_abs, a.ssim],
                               [b.spearman, b.spearman_abs, b.ssim], rtol=1e-6, atol=1e-7)


def test_occlusion_batch_sets_positions_per_call_and_changes_no_map():
  # --occlusion_batch N: N occluded images per forward call, i.e. N // B positions of B images
  # (at least 1); the maps are those of the library's 16 positions per call.
  import jax
  from gradejax import nets
  from gradejax.attribution.battery import maps

  m = _tiny_net()
  x = np.asarray(jax.random.uniform(jax.random.key(0), (3, 12, 12, 3)))
  fn = nets.bind(m, m.init(jax.random.key(1), x[:1]))
  t = np.array([0, 1, 1], np.int32)
  kw = dict(methods=('occlusion',), patch=4, stride=2, fill_mode='value')
  batched = maps.Inputs(battery.Options(occlusion_batch=6, **kw).config(), 'features')
  library = maps.Inputs(battery.Options(occlusion_batch=0, **kw).config(), 'features')
  assert batched('occlusion', fn, x)['chunk'] == 2
  assert batched('occlusion', fn, np.concatenate([x, x, x]))['chunk'] == 1  # 6 // 9 -> 1
  assert 'chunk' not in library('occlusion', fn, x)  # 0: the library's own chunk
  assert 'chunk' not in batched('saliency', fn, x)
  a = np.asarray(registry.heatmap('occlusion', fn, x, t, **batched('occlusion', fn, x)))
  b = np.asarray(registry.heatmap('occlusion', fn, x, t, **library('occlusion', fn, x)))
  np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert np.abs(a).max() > 1e-3
  # The report's default: the library's chunk, unrolled on a CPU (faster forwards there).
  assert battery.Options().config().occlusion_batch is None
  assert library('occlusion', fn, x)['unroll'] == (jax.default_backend() == 'cpu')
  assert 'unroll' not in batched('occlusion', fn, x)


def test_tap_order_from_a_shape_trace_is_forward_order_and_runs_no_op():
  # maps.tap_order reads the taps in the order they ran inside a shape-only trace (no eager
  # forward, no compile); jit and eval_shape's outputs would sort them.
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  from gradejax import nets
  from gradejax.attribution.battery import maps

  class Unsorted(nn.Module):
    @nn.compact
    def __call__(self, images, *, relu=nn.relu):
      x = nets.tap(self, 'zconv', relu(nn.Conv(3, (3, 3))(images)))
      x = nets.tap(self, 'mconv', relu(nn.Conv(3, (3, 3))(x)))
      return nets.tap(self, 'apool', nn.Dense(2)(jnp.mean(x, axis=(1, 2))))

  m = Unsorted()
  x = np.zeros((2, 10, 10, 3), np.float32)
  fn = nets.bind(m, m.init(jax.random.key(0), x[:1]))
  compiles = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda event, secs, **kw: compiles.append(event) if 'backend_compile' in event else None)
  got = maps.tap_order(fn, x)
  assert not compiles
  assert got == nets.tap_order(fn, x) == ['zconv', 'mconv', 'apool']
  assert maps.default_layer(fn, x, min_side=1) == 'mconv'


def test_sanity_cascade_compiles_each_method_once_for_checkpoint_params():
  # A checkpoint's params are committed to their device, module.init's are not: a cascade
  # stage mixing the two must reuse the method's program, not compile it again.
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  from gradejax import nets
  from gradejax.attribution.battery import maps

  class Tiny(nn.Module):
    @nn.compact
    def __call__(self, images, *, relu=nn.relu):
      x = nets.tap(self, 'features', relu(nn.Conv(3, (3, 3))(images)))
      return nets.tap(self, 'logits', nn.Dense(2, name='head')(jnp.mean(x, axis=(1, 2))))

  m = Tiny()
  x = np.asarray(jax.random.uniform(jax.random.key(0), (2, 8, 8, 3)))
  variables = jax.device_put(m.init(jax.random.key(1), x[:1]), jax.devices()[0])  # committed
  assert all(a.committed for a in jax.tree.leaves(variables))
  t = np.array([0, 1], np.int32)
  cfg = battery.Options(methods=('saliency',), sanity_images=2).config()
  names = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda e, d, fun_name='?', **kw: names.append(fun_name) if 'backend_compile' in e else None)
  san = checks.sanity_check(m, variables, x, t, ['saliency'], cfg, maps.Inputs(cfg, 'features'))
  assert [r.stage for r in san.rows] == ['+ head', '+ Conv_0']
  assert names.count('jit(saliency)') == 1, names
