"""The import direction of docs/CONTRACTS.md, read from the source with ``ast``: a module imports
only from its own stage or an earlier one, and gradejax/report imports no training code."""
import ast
import pathlib

from helpers import ROOT

PACKAGE = ROOT / 'gradejax'
# docs/CONTRACTS.md's table, in order: (stage, module-name prefixes)
STAGES = [
    ('leaves', ('gradejax', 'gradejax.paths', 'gradejax.logs', 'gradejax.options',
                'gradejax.stats', 'gradejax.imageops', 'gradejax.batching',
                'gradejax.distributed', 'gradejax.progress', 'gradejax.errors')),
    ('prepare', ('gradejax.data',)),
    ('model', ('gradejax.nets',)),
    ('train', ('gradejax.training',)),
    ('evaluate', ('gradejax.evaluation',)),
    ('visualise', ('gradejax.attribution', 'gradejax.optvis')),
    ('output', ('gradejax.report',)),
    ('commands', ('gradejax.prepare', 'gradejax.train', 'gradejax.evaluate',
                  'gradejax.visualize', 'gradejax.demo_data', 'gradejax.featurevis',
                  'gradejax.preregister')),
]
# Known violations: none (the report's trainer imports went with the battery split, issue 20).
# Nothing may be added here.
ALLOWED: set[tuple[str, str]] = set()


def stage(module: str) -> int:
  """Index in STAGES of the longest matching prefix (a command module beats its package)."""
  best, length = None, -1
  for i, (_, prefixes) in enumerate(STAGES):
    for p in prefixes:
      if (module == p or module.startswith(p + '.')) and len(p) > length:
        best, length = i, len(p)
  if best is None:
    raise AssertionError(f'{module}: not in docs/CONTRACTS.md\'s stage table; add it there and '
                         f'to STAGES')
  return best


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imports(path: pathlib.Path, text: str | None = None) -> set[str]:
  """gradejax modules imported by ``path`` (or by ``text`` as if it were that file):
  ``from gradejax.x import y`` counts as ``gradejax.x.y`` when y is a module, else
  ``gradejax.x``; relative imports resolved; anywhere in the file, inside functions too."""
  tree = ast.parse(path.read_text() if text is None else text, str(path))
  me = module_name(path)
  package = me if path.name == '__init__.py' else me.rpartition('.')[0]
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names if a.name.split('.')[0] == 'gradejax'}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        base = '.'.join(package.split('.')[:len(package.split('.')) - node.level + 1]
                        + ([base] if base else []))
      if base.split('.')[0] != 'gradejax':
        continue
      for a in node.names:
        sub = f'{base}.{a.name}'
        is_module = (ROOT / pathlib.Path(*sub.split('.'))).with_suffix('.py').exists() or (
            ROOT / pathlib.Path(*sub.split('.')) / '__init__.py').exists()
        out.add(sub if is_module else base)
  return out


def violations(files, text: str | None = None) -> set[tuple[str, str]]:
  bad = set()
  for path in files:
    me = module_name(path)
    for dep in imports(path, text):
      if stage(dep) > stage(me):
        bad.add((me, dep))
      if me.startswith('gradejax.report') and dep.startswith('gradejax.training'):
        bad.add((me, dep))
  return bad


def test_no_stage_imports_a_later_one():
  files = sorted(PACKAGE.rglob('*.py'))
  assert len(files) > 40
  bad = violations(files)
  new = sorted(bad - ALLOWED)
  assert not new, 'imports against docs/CONTRACTS.md\'s direction: ' + '; '.join(
      f'{a} imports {b}' for a, b in new)
  stale = sorted(ALLOWED - bad)
  assert not stale, f'allowed violations that no longer happen (remove them): {stale}'


def test_the_checker_sees_each_kind_of_import(tmp_path):
  """A planted upward import in each form is found (relative, from-module, plain, nested)."""
  for src in ('from gradejax.report import panels\n',
              'import gradejax.evaluation.crossval\n',
              'def f():\n  from ..training import train\n',
              'from ..nets import classifier\n'):
    assert violations([PACKAGE / 'data' / 'planted.py'], src), src
  assert not violations([PACKAGE / 'report' / 'planted.py'], 'from ..attribution import sanity\n')
  assert violations([PACKAGE / 'report' / 'planted.py'], 'from gradejax.training import runs\n')
  assert stage('gradejax.featurevis.__main__') > stage('gradejax.report.featurevis_page')
  assert stage('gradejax.stats') == 0 and stage('gradejax.report.panels') == 6
