"""Runs a researcher can rerun (issue 25): config values checked before any data is read, a
rerun with another training config refused (the run stays loadable), finished runs rerun
without losing results, one-line errors, the ledger counting an analysis once, the verdict as
TensorBoard HParams metrics (issue 21), configs loaded from any directory (issue 23)."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading

import jax
import numpy as np
import pytest

from helpers import ROOT, child_env
from run_fixtures import config_for
from gradejax import errors
from gradejax.evaluation import ledger
from gradejax.train import train_and_evaluate
from gradejax.training import runs


def copy_run(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
  shutil.copytree(src, dst, ignore=shutil.ignore_patterns('sanity'))
  return dst


def one_line(e: BaseException) -> str:
  text = str(e)
  assert '\n' not in text, text
  return text


# --- config values, before any data is read ------------------------------------------------

BAD_VALUES = [
    ({'steps': -5}, 'config.steps = -5 is out of range: set --config.steps to a value > 0'),
    ({'save_every': 0}, 'config.save_every = 0 is out of range'),
    ({'learning_rate': 0.0}, 'config.learning_rate = 0.0 is out of range'),
    ({'alpha': 1.0}, 'config.alpha = 1.0 is out of range: set --config.alpha to a value > 0 and < 1'),
    ({'head_input': 'level9'}, "config.head_input = 'level9' is not one of 'descriptor'"),
    ({'optimizer': 'adm'}, "config.optimizer = 'adm' is not one of 'adam', 'sgd'"),
    ({'imbalance': 'balanced'}, "config.imbalance = 'balanced' is not one of 'weighted'"),
    ({'schedule': 'linear'}, "config.schedule = 'linear' is not one of 'cosine', 'constant'"),
    ({'head.widths': ('abc',)}, "config.head.widths = 'abc' is not a list of layer widths"),
    ({'stepz': 5}, "Unknown config key 'stepz'"),
]


@pytest.mark.parametrize('change,message', BAD_VALUES, ids=[m[:22] for _, m in BAD_VALUES])
def test_bad_value_is_one_line_before_any_data_is_read(train_data_dir, tmp_path, change,
                                                       message):
  c = config_for(train_data_dir)
  with c.unlocked():
    for k, v in change.items():
      section, _, name = k.rpartition('.')
      (c[section] if section else c)[name] = v
  with pytest.raises(errors.ConfigError) as e:
    train_and_evaluate(c, str(tmp_path / 'run'))
  assert message in one_line(e.value)
  # Timing-independent evidence that it stopped before the work: no folder, no features.
  assert not (tmp_path / 'run').exists()


def test_widths_parse_from_the_command_line_forms():
  from gradejax.training.config_check import parse_widths
  assert parse_widths('(32,)') == (32,) and parse_widths('32,16') == (32, 16)
  assert parse_widths(('32',)) == (32,) and parse_widths('') == () and parse_widths(8) == (8,)
  for bad in ('abc', (0,), (-3,), '(1.5,)', (True,)):
    with pytest.raises(errors.ConfigError, match='not a list of layer widths'):
      parse_widths(bad)


# --- run identity ---------------------------------------------------------------------------

CHANGES = [('steps', 120, "steps 60 -> 120"), ('learning_rate', 0.01, 'learning_rate 0.001 -> 0.01'),
           ('seed', 1, 'seed 0 -> 1'), ('head.widths', (32,), 'head.widths [16] -> [32]'),
           ('optimizer', 'sgd', "optimizer 'adam' -> 'sgd'")]


def test_changed_training_config_is_refused_and_the_run_stays_loadable(train_data_dir,
                                                                        trained_run, tmp_path):
  workdir = copy_run(trained_run[0], tmp_path / 'run')
  saved = (workdir / 'config.json').read_bytes()
  _, before, _ = runs.load_trained(workdir)
  for key, value, listed in CHANGES:
    c = config_for(train_data_dir)
    section, _, name = key.rpartition('.')
    (c[section] if section else c)[name] = value
    with pytest.raises(errors.RunConflict) as e:
      train_and_evaluate(c, str(workdir))
    line = one_line(e.value)
    assert listed in line, line
    assert '--workdir' in line and '--restart' in line  # the two ways on
    assert (workdir / 'config.json').read_bytes() == saved  # written only once accepted
  _, after, config = runs.load_trained(workdir)  # what visualize loads
  jax.tree.map(np.testing.assert_array_equal, before, after)
  # Evaluation and logging fields may change: the rerun continues (here: nothing to train).
  c = config_for(train_data_dir, num_permutations=7, log_every=5)
  assert runs.check_rerun(c, workdir) == ['log_every', 'num_permutations']
  assert train_and_evaluate(c, str(workdir)) == trained_run[1]


def test_more_steps_with_a_constant_schedule_continue_exactly(train_data_dir, trained_run,
                                                              tmp_path):
  # Documented safe: the constant schedule does not depend on steps and step t's batch depends
  # on t only, so 8 steps then 8 more equal 16 steps in one go.
  kw = dict(schedule='constant', save_every=4, warmup_steps=0)
  for d in ('a', 'b'):
    shutil.copytree(trained_run[0] / 'features', tmp_path / d / 'features')
  train_and_evaluate(config_for(train_data_dir, steps=4, **kw), str(tmp_path / 'a'))
  train_and_evaluate(config_for(train_data_dir, steps=8, **kw), str(tmp_path / 'a'))
  train_and_evaluate(config_for(train_data_dir, steps=8, **kw), str(tmp_path / 'b'))
  jax.tree.map(np.testing.assert_array_equal, runs.load_trained(tmp_path / 'a')[1],
               runs.load_trained(tmp_path / 'b')[1])
  with pytest.raises(errors.RunConflict, match='steps 8 -> 6'):  # fewer steps: refused
    train_and_evaluate(config_for(train_data_dir, steps=6, **kw), str(tmp_path / 'a'))


def test_visualize_on_a_checkpoint_of_another_head_is_one_line(trained_run, tmp_path):
  workdir = copy_run(trained_run[0], tmp_path / 'run')
  for key, value in (('head', {'widths': [32], 'dropout': 0.1}), ('optimizer', 'sgd')):
    cfg = json.loads((trained_run[0] / 'config.json').read_text())
    cfg[key] = value
    (workdir / 'config.json').write_text(json.dumps(cfg))
    with pytest.raises(errors.RunConflict, match='does not fit') as e:
      runs.load_trained(workdir)
    assert str(workdir / 'checkpoints') in one_line(e.value)


# --- reruns of a finished run ---------------------------------------------------------------

def test_rerun_of_an_evaluated_run_keeps_its_results_and_counts_once(evaluated_run, tmp_path,
                                                                     caplog):
  src, c, metrics = evaluated_run
  workdir = copy_run(src, tmp_path / 'run')
  c.ledger = str(tmp_path / 'ledger.jsonl')
  shutil.copy(src.parent / 'evaluated_ledger.jsonl', c.ledger)
  files = {n: (workdir / n).read_bytes() for n in ('metrics.json', 'eval/verdict.json',
                                                   'eval/evaluated.json')}
  # The same command again: nothing to do, nothing rewritten, no new ledger line.
  again = train_and_evaluate(c, str(workdir))
  assert again['verdict']['cv_score'] == metrics['verdict']['cv_score']
  assert {n: (workdir / n).read_bytes() for n in files} == files
  assert len(ledger.read(c.ledger)) == 1
  # Killed during the evaluation (no stamp): the rerun re-evaluates from the restored state,
  # metrics.json stays equal, the verdict is the same, the ledger counts the analysis once.
  (workdir / 'eval' / 'evaluated.json').unlink()
  with caplog.at_level('INFO'):
    again = train_and_evaluate(c, str(workdir))
  assert (workdir / 'metrics.json').read_bytes() == files['metrics.json']
  v = json.loads((workdir / 'eval' / 'verdict.json').read_text())
  assert v['cv_score'] == metrics['verdict']['cv_score'] and v['p_value'] == again['verdict'][
      'p_value']
  assert v['ledger']['analyses'] == 1 and v['ledger']['runs'] == 2
  assert v['ledger']['p_holm'] == v['p_value']
  assert 'was run 2 times and counts once' in caplog.text
  assert not list(workdir.rglob('.*.tmp'))  # atomic writes leave no temporary file


def test_finished_run_killed_before_metrics_json_recomputes_them(train_data_dir, trained_run,
                                                                 tmp_path):
  workdir = copy_run(trained_run[0], tmp_path / 'run')
  (workdir / 'metrics.json').unlink()
  metrics = train_and_evaluate(config_for(train_data_dir), str(workdir))
  for split in ('train', 'valid'):
    for k, v in metrics[split].items():
      assert v == pytest.approx(trained_run[1][split][k], rel=1e-5)
  assert json.loads((workdir / 'metrics.json').read_text()) == metrics


def test_write_atomic_keeps_the_old_file_when_the_new_content_fails(tmp_path):
  path = tmp_path / 'metrics.json'
  errors.write_atomic(path, '{"a": 1}')
  with pytest.raises(UnicodeEncodeError):
    errors.write_atomic(path, '{"a": "\ud800"}')  # cannot be encoded: fails mid-write
  assert path.read_text() == '{"a": 1}'
  assert [p.name for p in tmp_path.iterdir()] == ['metrics.json']


# --- the ledger -----------------------------------------------------------------------------

def test_ledger_counts_each_dataset_apart(tmp_path):
  # Issue 22's survivor: record() without its dataset filter would count d1's analysis on d2.
  path = tmp_path / 'ledger.jsonl'
  ledger.record(path, {'dataset': 'd1', 'config_hash': 'A', 'p_value': 0.01})
  b = ledger.record(path, {'dataset': 'd2', 'config_hash': 'B', 'p_value': 0.02})
  assert b['analyses'] == 1 and b['p_holm'] == 0.02 and b['runs'] == 1
  a = ledger.record(path, {'dataset': 'd1', 'config_hash': 'A', 'p_value': 0.01})
  assert a['analyses'] == 1 and a['runs'] == 2 and 'counts once' in a['message']


def test_ledger_hash_ignores_the_fields_that_do_not_change_the_analysis(train_data_dir):
  c = config_for(train_data_dir)
  h = ledger.config_hash(c)
  c.log_every, c.save_every, c.permutation_chunk = 5, 10, 7
  assert ledger.config_hash(c) == h
  c.num_permutations = 11
  assert ledger.config_hash(c) != h


# --- one-line errors ------------------------------------------------------------------------

def _train_cli(*args, cwd=ROOT):
  return subprocess.run([sys.executable, '-m', 'gradejax.train', *args], cwd=cwd,
                        capture_output=True, text=True, timeout=180,
                        env=child_env(GRADEJAX_PROGRESS='1', GRADEJAX_PROGRESS_EVERY='0'))


def _error_line(r) -> str:
  assert r.returncode == 1, r.stderr[-2000:]
  assert 'Traceback' not in r.stderr, r.stderr[-2000:]
  (line,) = [l for l in r.stderr.splitlines() if l.startswith('error: ')]
  return line


def test_cli_user_errors_are_one_line_with_the_fix(tmp_path):
  # The command line (the config file is loaded while the flags are parsed).
  r = _train_cli('--config', str(tmp_path / 'none.py'), '--workdir', str(tmp_path / 'w'))
  assert 'Could not load the --config file' in _error_line(r) and 'none.py' in r.stderr


def test_workdir_that_is_a_file_or_read_only_is_one_line(tmp_path, capsys, monkeypatch):
  (tmp_path / 'file').write_text('x')
  readonly = pathlib.Path('/sys/gradejax-test-run')  # sysfs: no one may create folders there
  for workdir, want in ((tmp_path / 'file', 'is a file, not a folder'),
                        (readonly, f'Cannot write {readonly}')):
    with pytest.raises(SystemExit):
      errors.guard(runs.prepare_workdir)(workdir)
    err = capsys.readouterr().err
    assert err.startswith('error: ') and want in err and err.count('\n') == 1
  monkeypatch.setenv('GRADEJAX_DEBUG', '1')  # the traceback on demand
  with pytest.raises(errors.UserError, match='is a file'):
    errors.guard(runs.prepare_workdir)(tmp_path / 'file')


def test_empty_dataset_says_prepare_found_no_rows(tmp_path):
  from gradejax.data import prepare
  from fixtures import xlsx_builders as xb
  grey = np.full((64, 64, 3), 128, np.uint8)  # no face: every row is skipped
  wb = xb.write_workbook(tmp_path / 'wb.xlsx', [('a', 3.0, xb.png_bytes(grey)),
                                                ('b', 5.0, xb.png_bytes(grey))])
  prepare.prepare(wb, tmp_path / 'data', prepare.Options())
  with pytest.raises(errors.DataError, match='prepare found no usable rows') as e:
    train_and_evaluate(config_for(tmp_path / 'data'), str(tmp_path / 'run'))
  assert 'run prepare again' in one_line(e.value)


def _write_to_dev_full():
  with open('/dev/full', 'w') as f:
    f.write('x')


def test_disk_full_is_one_line_naming_the_path(tmp_path, capsys):
  # The kernel's own ENOSPC (/dev/full), in the command's thread and in a writer thread.
  # write() does not say which file: the line names the command's output folder.
  with pytest.raises(SystemExit) as e:
    errors.guard(_write_to_dev_full, output=str(tmp_path))()
  assert e.value.code == 1
  err = capsys.readouterr().err.strip()
  assert err.startswith(f'error: No space left on device while writing {tmp_path} (')
  assert 'MiB free there' in err and 'free space on that disk' in err and '\n' not in err

  def background_writer():
    t = threading.Thread(target=_write_to_dev_full)
    t.start()
    t.join()

  with pytest.raises(SystemExit):
    errors.guard(background_writer)()
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'No space left on device' in err and 'Traceback' not in err


def test_unknown_errors_keep_their_traceback():
  def bug():
    raise KeyError('a bug of ours')
  with pytest.raises(KeyError):
    errors.guard(bug)()
  assert errors.describe(ValueError('x')) is None


# --- TensorBoard: the verdict in the HParams table ------------------------------------------

def test_hparams_plugin_holds_the_evaluation_metrics(trained_run, evaluated_run, tmp_path):
  # Two runs side by side in one logdir, read by TensorBoard's own hparams backend: one row
  # (session group) per run, the evaluated run's verdict among its metrics.
  from tensorboard import context
  from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
  from tensorboard.plugins import base_plugin
  from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups
  logdir = tmp_path / 'logs'
  logdir.mkdir()
  for name, (workdir, *_) in (('trained', trained_run), ('evaluated', evaluated_run)):
    os.symlink(workdir / 'tb', logdir / name)
  mux = plugin_event_multiplexer.EventMultiplexer()
  mux.AddRunsFromDirectory(str(logdir))
  mux.Reload()
  ctx = backend_context.Context(base_plugin.TBContext(
      logdir=str(logdir), multiplexer=mux,
      data_provider=data_provider.MultiplexerDataProvider(mux, str(logdir))))
  groups = list_session_groups.Handler(
      context.RequestContext(), ctx, '', api_pb2.ListSessionGroupsRequest(
          start_index=0, slice_size=10, allowed_statuses=[api_pb2.STATUS_SUCCESS,
                                                          api_pb2.STATUS_UNKNOWN])).run()
  rows = {g.name: {m.name.tag: m.value for m in g.metric_values} for g in groups.session_groups}
  assert set(rows) == {'trained', 'evaluated'}
  v = json.loads((evaluated_run[0] / 'eval' / 'verdict.json').read_text())
  assert rows['evaluated']['verdict/cv_score'] == pytest.approx(v['cv_score'], rel=1e-6)
  assert rows['evaluated']['verdict/p_value'] == pytest.approx(v['p_value'], rel=1e-6)
  assert rows['evaluated']['verdict/ci95_low'] == pytest.approx(v['ci95'][0], rel=1e-6)
  assert rows['trained']['valid/roc_auc'] == pytest.approx(trained_run[1]['valid']['roc_auc'],
                                                           rel=1e-5)
  assert 'verdict/cv_score' not in rows['trained']  # not evaluated: an empty cell


# --- configs from anywhere ------------------------------------------------------------------

def test_train_from_another_directory_restarting_a_run(train_data_dir, trained_run, tmp_path):
  # configs/demo.py by its absolute path from a temporary folder (it loads its sibling
  # default.py by path), with --restart on a run trained with another config: the old run is
  # moved aside intact and the new one trains from scratch.
  workdir = copy_run(trained_run[0], tmp_path / 'run')
  old_params = runs.load_trained(workdir)[1]
  r = _train_cli('--config', str(ROOT / 'configs' / 'demo.py'), '--workdir', str(workdir),
                 f'--config.data_dir={train_data_dir}', '--config.evaluate=False',
                 '--config.num_views=1', '--config.head.widths=(16,)',
                 '--config.head.dropout=0.1', '--config.steps=4', '--config.save_every=4',
                 '--config.warmup_steps=1', '--restart', cwd=tmp_path)
  assert r.returncode == 0, r.stderr[-3000:]
  (aside,) = tmp_path.glob('run.prev-*')
  jax.tree.map(np.testing.assert_array_equal, old_params, runs.load_trained(aside)[1])
  assert runs.checkpoint_manager(workdir).latest_step() == 4
  assert json.loads((workdir / 'config.json').read_text())['steps'] == 4
  assert json.loads((workdir / 'metrics.json').read_text())['train']
  # The feature step's progress lines, through gradejax.progress (features reused here).
  assert 'train: features of 24 chips x 2 views' in r.stderr
