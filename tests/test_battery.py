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
    extra = set(kw) - set(registry.get(name).options)
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
