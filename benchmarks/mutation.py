"""Mutation testing of the science-critical modules with cosmic-ray, as a kept habit (issue 22).

For each module given (default: :data:`DEFAULT_MODULES`), one module at a time: the tree
(``gradejax/``, ``tests/``, ``configs/``, ``pytest.ini``) is copied to a scratch folder
(cosmic-ray edits the file in place; the working tree is never touched), cosmic-ray makes every
mutant of the module from a realistic operator set (:data:`EXCLUDED_OPERATORS` drops the
noisy ones: bit shifts, ``is`` comparisons, number and variable replacement, decorator removal),
skips lines marked ``# pragma: no mutate``, and runs only the module's test files
(:data:`TESTS`, or ``module=tests/a.py,tests/b.py`` on the command line) with ``pytest -x``.
A mutant is killed when a test fails or it runs past the timeout (3x the baseline run + 30 s).
The score (killed / (killed + survived)) and every surviving mutant (line, operator, the
changed source) are appended to benchmarks/RESULTS.md as a new section.

  PYTHONPATH=$PWD JAX_PLATFORMS=cpu .venv/bin/python benchmarks/mutation.py \
      [gradejax/evaluation/power.py[=tests/test_properties.py,...] ...] [--sample N]
      [--results FILE] [--count] [--max_minutes M] [--workdir DIR]

``--count`` only makes the mutants and prints how many each module has (seconds, no test
run). ``--max_minutes`` stops a module's run after M minutes and reports what ran (the rest
counted as "not run"). ``--workdir DIR`` keeps each module's scratch copy and cosmic-ray session
under DIR/<module>: a second run with the same DIR resumes where the first stopped (the tree
is not re-copied, the mutants already tested are not re-run).

cosmic-ray is not a gradejax dependency: the script installs ``cosmic-ray==8.7.0`` into its
own venv (``--tool_venv``, default ``.mutation-venv``, git-ignored) on first use. It runs the
tests with the Python that runs it. Long: each mutant is a pytest run (~5-20 s on 2 cores);
give the narrowest test files, and use ``nice``.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOOL = 'cosmic-ray==8.7.0'

# The modules whose bugs change a scientific answer, and the fast test selection that exercises
# each (pytest arguments: files, then an optional -k filter; tests/test_mutants_*.py hold the
# tests written for the survivors of earlier runs, first so that a mutant they kill fails fast).
# Measured per mutant on the shared 2-core machine at load 4-6 (2026-12-02): 3-10 s for the
# data/ledger/plan selections, 20-40 s for the evaluation and attribution ones.
_K = '-k'
TESTS = {
    'gradejax/evaluation/crossval.py': [
        'tests/test_mutants_crossval.py', 'tests/test_evaluate.py', 'tests/test_confounds.py',
        'tests/test_bootstrap_ci.py', 'tests/test_properties.py', _K,
        'separable or bootstrap or chunks or repeats or balances or noise or seed or ridge or '
        'groups or null_labellings or strata or permutation or test_mutants'],
    'gradejax/evaluation/power.py': ['tests/test_properties.py', _K, 'power or hanley'],
    'gradejax/evaluation/confounds.py': ['tests/test_mutants_confounds.py',
                                         'tests/test_confounds.py', _K,
                                         'not prepare and not demo'],
    'gradejax/evaluation/harmonise.py': ['tests/test_mutants_harmonise.py',
                                         'tests/test_harmonise.py', _K,
                                         'equalise or gain_needs or test_mutants or '
                                         'quantile or survival or lowpass'],
    'gradejax/evaluation/ledger.py': ['tests/test_mutants_ledger.py', 'tests/test_confounds.py',
                                      'tests/test_properties.py', _K,
                                      'ledger or holm or test_mutants'],
    'gradejax/evaluation/plan.py': ['tests/test_mutants_plan.py', 'tests/test_harmonise.py', _K,
                                    'plan or preregister'],
    'gradejax/evaluation/evaluate.py': [
        'tests/test_mutants_evaluate.py', 'tests/test_evaluate.py', 'tests/test_confounds.py', _K,
        'image_statistics or verdict or beats_chance or group_confounded or background_face or '
        'test_mutants'],
    'gradejax/stats.py': ['tests/test_stats.py', 'tests/test_properties.py'],
    'gradejax/attribution/gradients.py': [
        'tests/test_mutants_attribution.py', 'tests/test_attribution.py', _K,
        'linear_gradient or smoothgrad or integrated or saliency or chunk or test_mutants'],
    'gradejax/attribution/deeplift.py': ['tests/test_deeplift.py', 'tests/test_attribution.py'],
    'gradejax/attribution/rules.py': ['tests/test_attribution.py'],
    'gradejax/attribution/class_activation.py': [
        'tests/test_mutants_attribution.py', 'tests/test_attribution.py', _K,
        'cam or class_map or test_mutants'],
    'gradejax/attribution/faithfulness.py': [
        'tests/test_mutants_attribution.py', 'tests/test_attribution_metrics.py',
        'tests/test_faithfulness_road.py', 'tests/test_attribution_perturbation.py', _K,
        'deletion or softmax or road or test_mutants'],
    'gradejax/attribution/localisation.py': [
        'tests/test_mutants_attribution.py', 'tests/test_attribution_metrics.py',
        'tests/test_attribution_perturbation.py', _K,
        'localisation or relevance_rank or test_mutants'],
    'gradejax/attribution/occlusion_sensitivity.py': [
        'tests/test_mutants_attribution.py', 'tests/test_attribution.py',
        'tests/test_attribution_perturbation.py', _K, 'occlusion or multiscale or test_mutants'],
    'gradejax/data/workbook.py': ['tests/test_workbook.py'],
    'gradejax/data/ownership.py': [
        'tests/test_mutants_ownership.py', 'tests/test_workbook.py', _K,
        'anchored or every_photo or competing or absolute_anchor or logo or in_cell or '
        'test_mutants'],
    'gradejax/data/labels.py': ['tests/test_mutants_labels.py', 'tests/test_prepare.py', _K,
                                'pivot or quantile or stratified or test_mutants'],
    'gradejax/data/photo_quality.py': ['tests/test_photo_quality.py', 'tests/test_confounds.py'],
}
DEFAULT_MODULES = list(TESTS)

# Kept: the swaps a person makes by mistake (+/-, *//, ** -> *, &/|, the comparison's boundary
# and direction, ==/!=, and/or, True/False, not added, a loop that never runs, break/continue,
# an exception type). Each binary operator would otherwise get 10 replacements, mostly absurd.
EXCLUDED_OPERATORS = [
    r'core/ReplaceBinaryOperator_.*(RShift|LShift|BitXor|FloorDiv|Mod)',
    r'core/ReplaceBinaryOperator_(Add|Sub|Mul|Div|Pow)_(BitOr|BitAnd)',
    r'core/ReplaceBinaryOperator_(BitOr|BitAnd)_(Add|Sub|Mul|Div|Pow)',
    r'core/ReplaceBinaryOperator_(Add|Sub)_(Mul|Div|Pow)$',
    r'core/ReplaceBinaryOperator_(Mul|Div)_(Add|Sub|Pow)$',
    r'core/ReplaceBinaryOperator_Pow_(Add|Sub|Div)$',
    r'core/ReplaceComparisonOperator_.*_(Is|IsNot)$',
    r'core/ReplaceComparisonOperator_(Is|IsNot)_(Lt|LtE|Gt|GtE)$',
    r'core/ReplaceComparisonOperator_(Lt|LtE|Gt|GtE)_(Eq|NotEq)$',
    r'core/ReplaceComparisonOperator_(Eq|NotEq)_(Lt|LtE|Gt|GtE)$',
    r'core/ReplaceUnaryOperator_.*(Invert|UAdd)',
    r'core/NumberReplacer', r'core/VariableReplacer', r'core/VariableInserter',
    r'core/RemoveDecorator',
]


def tool_venv(path: pathlib.Path) -> pathlib.Path:
  """The bin folder of a venv holding cosmic-ray (made on first use)."""
  bin_dir = path / 'bin'
  if not (bin_dir / 'cosmic-ray').exists():
    subprocess.run([sys.executable, '-m', 'venv', str(path)], check=True)
    subprocess.run([str(bin_dir / 'pip'), 'install', '-q', TOOL], check=True)
  return bin_dir


def copy_tree(dst: pathlib.Path) -> None:
  ignore = shutil.ignore_patterns('__pycache__', '*.pyc')
  for name in ('gradejax', 'tests', 'configs'):
    if (ROOT / name).is_dir():
      shutil.copytree(ROOT / name, dst / name, ignore=ignore)
  for name in ('pytest.ini', 'pyproject.toml'):
    if (ROOT / name).exists():
      shutil.copy(ROOT / name, dst / name)


def sample(session: pathlib.Path, keep: int, seed: int) -> int:
  """Marks all but ``keep`` randomly chosen pending mutants as skipped; returns how many
  were left out."""
  import random
  import sqlite3
  with sqlite3.connect(session) as db:
    pending = [r[0] for r in db.execute(
        'SELECT job_id FROM work_items WHERE job_id NOT IN (SELECT job_id FROM work_results)')]
    drop = sorted(set(pending) - set(random.Random(seed).sample(pending, min(keep,
                                                                             len(pending)))))
    db.executemany("INSERT INTO work_results (job_id, worker_outcome, output) "
                   "VALUES (?, 'SKIPPED', 'not sampled')", [(j,) for j in drop])
  return len(drop)


def pending_count(session: pathlib.Path) -> int:
  """How many mutants the session still has to test."""
  import sqlite3
  with sqlite3.connect(session) as db:
    return db.execute('SELECT COUNT(*) FROM work_items WHERE job_id NOT IN '
                      '(SELECT job_id FROM work_results)').fetchone()[0]


def run_module(module: str, tests: list[str], bin_dir: pathlib.Path,
               keep: int | None = None, seed: int = 0, max_minutes: float | None = None,
               workdir: str | None = None, count_only: bool = False) -> dict:
  """Mutation-tests ``module`` in a scratch copy; returns counts and survivors."""
  if workdir:
    keep_dir = pathlib.Path(workdir) / module.replace('/', '_')
    keep_dir.mkdir(parents=True, exist_ok=True)
    tmp_ctx = contextlib.nullcontext(str(keep_dir))
  else:
    tmp_ctx = tempfile.TemporaryDirectory(prefix='gradejax-mutation-')
  with tmp_ctx as tmp:
    work = pathlib.Path(tmp)
    session, meta, cfg = work / 'session.sqlite', work / 'meta.json', work / 'cosmic-ray.toml'
    info = json.loads(meta.read_text()) if meta.exists() else {}
    if not info:
      shutil.rmtree(work / 'gradejax', ignore_errors=True)
      shutil.rmtree(work / 'tests', ignore_errors=True)
      shutil.rmtree(work / 'configs', ignore_errors=True)
      copy_tree(work)
    # A run stopped mid-mutant leaves the module mutated on disk: put the original back.
    pristine = work / 'pristine.py'
    if pristine.exists():
      shutil.copy(pristine, work / module)
    else:
      shutil.copy(work / module, pristine)
    env = {**os.environ, 'PYTHONPATH': str(work), 'JAX_PLATFORMS': 'cpu',
           'PYTHONDONTWRITEBYTECODE': '1', 'GRADEJAX_PROGRESS': '0'}
    test_cmd = [sys.executable, '-m', 'pytest', '-x', '-q', '-p', 'no:cacheprovider',
                '-p', 'no:randomly', *tests]
    baseline_s = info.get('baseline_s')
    if baseline_s is None and not count_only:
      t = time.perf_counter()
      base = subprocess.run(test_cmd, cwd=work, env=env, capture_output=True, text=True)
      baseline_s = time.perf_counter() - t
      if base.returncode != 0:
        raise SystemExit(f'{module}: its tests fail before any mutation ({" ".join(tests)}):\n'
                         f'{base.stdout[-2000:]}')
    cfg.write_text('[cosmic-ray]\n'
                   f'module-path = "{module}"\n'
                   f'timeout = {3 * (baseline_s or 0) + 30:.0f}\n'
                   'excluded-modules = []\n'
                   f'test-command = {json.dumps(shlex.join(test_cmd))}\n'
                   '[cosmic-ray.distributor]\nname = "local"\n'
                   '[cosmic-ray.filters.operators-filter]\n'
                   f'exclude-operators = {json.dumps(EXCLUDED_OPERATORS)}\n')
    cr = lambda *a: subprocess.run([str(bin_dir / a[0]), *a[1:]], cwd=work, env=env,
                                   check=True, capture_output=True, text=True)
    if 'total' not in info:
      cr('cosmic-ray', 'init', str(cfg), str(session))
      cr('cr-filter-operators', str(session), str(cfg))
      cr('cr-filter-pragma', str(session))
      info['total'] = pending_count(session)
      info['not_sampled'] = sample(session, keep, seed) if keep is not None else 0
    info['baseline_s'] = baseline_s
    meta.write_text(json.dumps(info))
    not_sampled = info['not_sampled']
    if count_only:
      return {'module': module, 'mutants': info['total']}
    t = time.perf_counter()
    # cosmic-ray records each mutant's result as it ends, so a run stopped by the time limit
    # keeps what it did; the mutants it did not reach count as "not run".
    proc = subprocess.Popen([str(bin_dir / 'cosmic-ray'), 'exec', str(cfg), str(session)],
                            cwd=work, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
      proc.wait(timeout=None if max_minutes is None else 60 * max_minutes)
    except subprocess.TimeoutExpired:
      os.killpg(proc.pid, signal.SIGTERM)
      proc.wait()
      shutil.copy(pristine, work / module)
    exec_s = time.perf_counter() - t
    dump = cr('cosmic-ray', 'dump', str(session)).stdout
    lines = (work / module).read_text().splitlines()
  killed, survived, incompetent, skipped, survivors = 0, 0, 0, -not_sampled, []
  not_run = 0
  for line in dump.splitlines():
    item, result = json.loads(line)
    if result is None:
      not_run += 1
      continue
    if result['worker_outcome'] == 'skipped':
      skipped += 1
      continue
    outcome = result['test_outcome']
    if result['worker_outcome'] == 'timeout' or outcome == 'killed':
      killed += 1
    elif outcome == 'incompetent':
      incompetent += 1
    else:
      survived += 1
      m = item['mutations'][0]
      row = m['start_pos'][0]
      diff = [l[1:].strip() for l in (result.get('diff') or '').splitlines()
              if l[:1] in '+-' and not l.startswith(('+++', '---'))]
      survivors.append({'line': row, 'operator': m['operator_name'].split('/')[-1],
                        'occurrence': m['occurrence'], 'source': lines[row - 1].strip(),
                        'diff': diff})
  return {'module': module, 'tests': tests, 'killed': killed, 'survived': survived,
          'incompetent': incompetent, 'skipped': skipped, 'not_sampled': not_sampled,
          'not_run': not_run,
          'baseline_s': baseline_s,
          'exec_s': exec_s, 'survivors': survivors}


def markdown(results: list[dict]) -> str:
  today = datetime.date.today().isoformat()
  out = [f'\n## Mutation testing ({today}, cosmic-ray 8.7.0, `benchmarks/mutation.py`)\n',
         'killed / killable = killed (a test failed or timed out) over killed + survived; '
         'incompetent mutants (the module no longer imports) do not count.\n',
         '| module | tests | killed / killable | score | incompetent | not sampled | not run (time limit) | seconds |',
         '|---|---|---|---|---|---|---|---|']
  for r in results:
    n = r['killed'] + r['survived']
    out.append(f"| {r['module']} | {', '.join(r['tests'])} | {r['killed']} / {n} | "
               f"{100 * r['killed'] / max(n, 1):.0f}% | {r['incompetent']} | "
               f"{r['not_sampled']} | {r.get('not_run', 0)} | {r['exec_s']:.0f} |")
  for r in results:
    if r['survivors']:
      out.append(f"\nSurvivors in `{r['module']}`:\n")
      for s in r['survivors']:
        change = ' -> '.join(f'`{d}`' for d in s['diff'][:2]) or f"`{s['source']}`"
        out.append(f"- line {s['line']} ({s['operator']}): {change}")
  return '\n'.join(out) + '\n'


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('modules', nargs='*',
                  help='module paths, each optionally =pytest,args (comma-separated: test '
                       'files, tests/x.py::test_y, -k,expr)')
  ap.add_argument('--sample', type=int, default=None,
                  help='run only this many randomly chosen mutants per module (default all)')
  ap.add_argument('--seed', type=int, default=0, help='of --sample')
  ap.add_argument('--tool_venv', default=str(ROOT / '.mutation-venv'))
  ap.add_argument('--count', action='store_true',
                  help='only make the mutants and print how many each module has')
  ap.add_argument('--max_minutes', type=float, default=None,
                  help='stop each module after this many minutes (the rest: "not run")')
  ap.add_argument('--workdir', default=None,
                  help='keep scratch copies and sessions here; a rerun with it resumes')
  ap.add_argument('--results', default=str(ROOT / 'benchmarks' / 'RESULTS.md'),
                  help="markdown file the section is appended to ('-': print only)")
  args = ap.parse_args()
  bin_dir = tool_venv(pathlib.Path(args.tool_venv))
  results = []
  for spec in args.modules or DEFAULT_MODULES:
    module, _, tests = spec.partition('=')
    tests = tests.split(',') if tests else TESTS.get(module)
    if not tests:
      raise SystemExit(f'{module}: no test files known for it; give them as {module}=tests/x.py')
    r = run_module(module, tests, bin_dir, args.sample, args.seed, args.max_minutes,
                   args.workdir, args.count)
    if args.count:
      print(json.dumps(r), flush=True)
      continue
    print(json.dumps({k: v for k, v in r.items() if k != 'survivors'}), flush=True)
    results.append(r)
    text = markdown([r])  # one section per module as it ends: a long run keeps what it did
    print(text, flush=True)
    if args.results != '-':
      with open(args.results, 'a') as f:
        f.write(text)


if __name__ == '__main__':
  main()
