"""The verdict tells photo conditions from faces (issue 23): worlds, re-test cost, null calibration.

  .venv/bin/python benchmarks/verdict_worlds.py --part worlds [--n 200] [--kinds a,b] [--append]
  .venv/bin/python benchmarks/verdict_worlds.py --part retest_timing [--append]
  .venv/bin/python benchmarks/verdict_worlds.py --part nulls [--worlds 200] [--max_minutes 30]

* ``worlds``: for each demo cue kind (gradejax.data.demo_data.CUE_KINDS, plus the null world) a
  workbook of ``--n`` rows -> prepare (median pivot) -> train + evaluate with configs/toy.py
  (1000 permutations); one table row per world: the CNN, the answer, the harmonisation that
  removed the signal or the facial aspect, the fully harmonised score. Expected: condition
  kinds (jpeg, background, brightness, sharpness, resolution) answer "photo conditions" naming
  a harmonisation; facial kinds (sticker, eyeband, face_shape) "faces"; the null world "chance".
* ``retest_timing``: the battery + harmonised re-test on the demo's shape (430 chips, the real
  face ResNet, 1000 permutations, bootstrap 1000), seconds per step.
* ``nulls``: ``--worlds`` null worlds at the evaluation layer (label-free chips, the toy CNN of
  tests/test_harmonise.py, the full decision rule with the re-test): the share answered
  "faces" or "photo conditions" (should be <= alpha within sampling error) and the
  uniformity of the re-test's p-values.
"""
from __future__ import annotations

import datetime
import json
import os
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'tests'))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

flags.DEFINE_enum('part', 'worlds', ['worlds', 'retest_timing', 'nulls', 'cache', 'lab',
                                     'null_real'], 'what to run')
flags.DEFINE_string('cache', '/tmp/gradejax-verdict-worlds', 'cache of prepared worlds (cache, '
                    'lab, null_real): chips, labels, folds, conditions, targets, features')
flags.DEFINE_integer('permutations', 500, 'permutations per world (lab, null_real)')
flags.DEFINE_string('cue_shape', 'sticker', 'cue_shape of the sticker world (sticker or tag)')
flags.DEFINE_integer('n', 200, 'rows per generated world (worlds)')
flags.DEFINE_float('cue_strength', 0.8, 'cue strength of the non-null worlds')
flags.DEFINE_string('kinds', '', 'comma-separated cue kinds (default: all, plus null)')
flags.DEFINE_integer('worlds', 200, 'null worlds (nulls)')
flags.DEFINE_float('max_minutes', 30.0, 'stop the null worlds after this long (say how many)')
flags.DEFINE_bool('append', False, 'append the result to benchmarks/RESULTS.md')
FLAGS = flags.FLAGS


def header(title: str) -> list[str]:
  return ['', f'## {title}', '',
          f'`benchmarks/verdict_worlds.py --part {FLAGS.part}`; '
          f'{datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; 2-core CPU shared with other jobs '
          f'(load average {os.getloadavg()[0]:.1f}: seconds are inflated); jax {jax.__version__}.',
          '']


def worlds() -> list[str]:
  from configs import toy
  from gradejax.data import demo_data, prepare
  from gradejax.train import train_and_evaluate
  kinds = [k for k in FLAGS.kinds.split(',') if k] or list(demo_data.CUE_KINDS) + ['null']
  lines = header(f'Verdict worlds (issue 23): {FLAGS.n} rows, cue strength {FLAGS.cue_strength}')
  lines += ['| world | kind | CNN ROC-AUC (CI) | answer | removed by / aspect | fully '
            'harmonised (p) | s |', '|---|---|---|---|---|---|---:|']
  for kind in kinds:
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
      root = pathlib.Path(d)
      s = 0.0 if kind == 'null' else FLAGS.cue_strength
      demo_data.write_demo_workbook(root / 'wb.xlsx', n=FLAGS.n, seed=0, cue_strength=s,
                                    cue_kind='sticker' if kind == 'null' else kind)
      prepare.prepare(root / 'wb.xlsx', root / 'data', prepare.Options(pivot='median'))
      c = toy.get_config()
      c.data_dir, c.ledger, c.num_permutations = str(root / 'data'), str(root / 'l.jsonl'), 1000
      c.bootstrap = 1000
      train_and_evaluate(c, str(root / 'run'))
      v = json.loads((root / 'run' / 'eval' / 'verdict.json').read_text())
    hm = v.get('harmonised') or {}
    what = (', '.join(hm.get('removed_by') or []) or
            (v.get('facial_aspect') or {}).get('aspect', '') or
            (('all together' if hm and not hm.get('survives') else '') or
             ', '.join(v.get('explained_by', []))))
    full = hm.get('all', {})
    cat = ('condition' if kind in demo_data.CONDITION_KINDS else
           'facial' if kind in demo_data.FACIAL_KINDS else 'null')
    lines.append(f'| {kind} | {cat} | {v["cv_score"]:.3f} ({v["ci95"][0]:.3f}-'
                 f'{v["ci95"][1]:.3f}) | {v["answer"]} | {what} | '
                 + (f'{full["cv_score"]:.3f} ({full["p_value"]:.3f})' if full else '-')
                 + f' | {time.time() - t0:.0f} |')
    print(lines[-1], flush=True)
  return lines


def cache() -> list[str]:
  """Generates and prepares each world once; stores what the evaluation reads (chips, labels,
  dataset folds, condition feature sets, harmonisation targets) in ``--cache/<world>.npz``."""
  from configs import toy
  from gradejax.data import demo_data, prepare
  from gradejax.evaluation import evaluate
  from gradejax.training import input_pipeline
  kinds = [k for k in FLAGS.kinds.split(',') if k] or list(demo_data.CUE_KINDS) + ['null']
  root = pathlib.Path(FLAGS.cache)
  root.mkdir(parents=True, exist_ok=True)
  lines = []
  for kind in kinds:
    out = root / f'{kind}-{FLAGS.n}.npz'
    if out.is_file():
      continue
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
      tmp = pathlib.Path(d)
      s = 0.0 if kind == 'null' else FLAGS.cue_strength
      cue_kind = 'sticker' if kind in ('null', 'tag') else kind
      demo_data.write_demo_workbook(tmp / 'wb.xlsx', n=FLAGS.n, seed=0, cue_strength=s,
                                    cue_kind=cue_kind,
                                    cue_shape='tag' if kind == 'tag' else 'sticker')
      prepare.prepare(tmp / 'wb.xlsx', tmp / 'data', prepare.Options(pivot='median'))
      c = toy.get_config()
      c.data_dir = str(tmp / 'data')
      data = input_pipeline.load_dataset(c)
      conditions, _, targets = evaluate._photo_conditions(c, data)
      np.savez_compressed(out, images=data['images'], label=data['label'], fold=data['fold'],
                          grade=data['grade'], targets=json.dumps(targets),
                          **{f'cond_{k}': v for k, v in (conditions or {}).items()})
    lines.append(f'{kind}: {time.time() - t0:.0f} s')
    print(lines[-1], flush=True)
  return lines


def retest_timing() -> list[str]:
  from configs import demo
  from gradejax.evaluation import confounds, crossval, harmonise
  from gradejax.evaluation.evaluate import featurizer
  from gradejax.data import demo_data, faces, labels
  from gradejax.nets import extractor
  config = demo.get_config()
  module, variables = extractor.load_face_resnet()
  featurize = featurizer(config, module, variables)
  n = 430
  models = faces.load_models()
  base = []
  for r in range(24):  # real aligned demo chips, tiled to 430 rows
    img, _, _ = demo_data.render_row(0, r, False)
    face, _ = faces.find_face(models, img)
    base.append(faces.align(models, img, face.box)[0])
  chips = np.stack([base[i % len(base)] for i in range(n)])
  rng = np.random.default_rng(0)
  y = (rng.uniform(size=n) < 0.5).astype(np.int32)
  folds = labels.stratified_folds(y, 5, 0)[None]
  perms = crossval.label_permutations(folds, config.num_permutations, 1)
  t0 = time.perf_counter()
  x = featurize(chips)
  one = time.perf_counter() - t0
  t0 = time.perf_counter()
  hm = harmonise.retest(config.metric, featurize, chips, x, y, folds, perms, 2,
                        config.baseline_ridge, config.bootstrap, 2, config.permutation_chunk,
                        config.alpha, 0.5, {'jpeg_quality': 25, 'side': 120})
  re_s = time.perf_counter() - t0
  sets = {'image_statistics': confounds.image_statistics(chips),
          'blurred_photo': confounds.blurred_photo(hm['images_all'])}
  for name, d in (('image_quality', 17), ('background', 52), ('head_pose', 4),
                  ('face_geometry', 137)):
    sets[name] = rng.normal(size=(n, d)).astype(np.float32)
  t0 = time.perf_counter()
  bat = confounds.battery(config.metric, sets, y, folds, perms, 2, config.baseline_ridge,
                          config.bootstrap, 2, config.permutation_chunk)
  cnn_oof = np.stack([1 - (p := rng.uniform(size=(1, n))), p], -1).astype(np.float32)
  confounds.incremental(config.metric, bat, ['image_statistics'], cnn_oof, y, folds, perms, 2,
                        config.baseline_ridge, config.permutation_chunk, config.bootstrap, 2)
  bat_s = time.perf_counter() - t0
  total = re_s + bat_s
  return header('Harmonised re-test + battery cost (issue 23)') + [
      f'Demo shape: {n} chips (150 px), {config.num_permutations} permutations, bootstrap '
      f'{config.bootstrap}, 5-fold x 1.', '', '| step | seconds |', '|---|---:|',
      f'| one face-ResNet pass over {n} chips (incl. compile) | {one:.1f} |',
      f'| harmonised re-test: 5 harmonisations (4 alone + all), 5 ResNet passes, 6 ridge '
      f'permutation tests | {re_s:.1f} |',
      f'| battery (6 sets) + incremental with gain CI | {bat_s:.1f} |',
      f'| **added to the evaluation** | **{total:.1f}** |', '',
      f'Budget <= 90 s: {"met" if total <= 90 else "NOT met"} (on a loaded machine; see load).']


def nulls() -> list[str]:
  from test_harmonise import N, cfg, chips_of, toy_cnn
  from gradejax.data import labels
  from gradejax.evaluation import confounds, evaluate, harmonise
  answers, ps = [], {k: [] for k in list(harmonise.KINDS) + ['all', 'reference']}
  t_end = time.time() + 60 * FLAGS.max_minutes
  for w in range(FLAGS.worlds):
    if time.time() > t_end:
      break
    rng = np.random.default_rng([w, 23])
    y = (np.arange(N) % 2).astype(np.int32)
    fold = labels.stratified_folds(y, 5, w)
    chips = chips_of(rng, N)
    v = evaluate.evaluate_features(cfg(seed=w), toy_cnn(chips), y, fold, 2, images=chips,
                                   featurize=toy_cnn, targets={'jpeg_quality': 50, 'side': 24})
    answers.append(v['answer'])
    for k in ps:
      ps[k].append(v['harmonised'][k]['p_value'])
    if w % 10 == 9:
      print(w + 1, 'worlds', flush=True)
  m = len(answers)
  a = np.array(answers)
  se = np.sqrt(0.05 * 0.95 / max(m, 1))
  lines = header(f'Null calibration of the verdict (issue 23): {m} null worlds') + [
      f'{m} of the {FLAGS.worlds} asked null worlds ran in {FLAGS.max_minutes:.0f} min '
      f'({N} label-free 48-px chips, toy CNN, 100 permutations, the full rule with the '
      f're-test).', '',
      '| answer | share |', '|---|---:|'] + [
      f'| {k} | {np.mean(a == k):.3f} |' for k in confounds.ANSWERS] + [
      '', f'Share answered faces or photo conditions: '
      f'{np.mean(a != confounds.CHANCE):.3f} (alpha 0.05; binomial sd {se:.3f}).', '',
      '| re-test p-value of | share < 0.05 | KS p vs uniform |', '|---|---:|---:|'] + [
      f'| {k} | {np.mean(np.array(v) < 0.05):.3f} | '
      f'{scipy_stats.kstest(v, "uniform").pvalue:.2f} |' for k, v in ps.items()]
  return lines


def _load_world(path: pathlib.Path) -> dict:
  d = np.load(path)
  return {'images': d['images'], 'label': d['label'], 'fold': d['fold'],
          'targets': json.loads(str(d['targets'])),
          'conditions': {k[5:]: d[k] for k in d.files if k.startswith('cond_')}}


def _real_config(permutations: int):
  from configs import toy
  c = toy.get_config()
  c.num_permutations, c.bootstrap = permutations, 500
  return c


def lab() -> list[str]:
  """The full evaluation (real face ResNet, the decision with the re-test) on each cached
  world (``--part cache`` first); one table row per world with every harmonisation's score."""
  from gradejax.data import demo_data
  from gradejax.evaluation import evaluate, harmonise
  from gradejax.nets import extractor
  config = _real_config(FLAGS.permutations)
  module, variables = extractor.load_face_resnet()
  featurize = evaluate.featurizer(config, module, variables)
  root = pathlib.Path(FLAGS.cache)
  kinds = [k for k in FLAGS.kinds.split(',') if k] or list(demo_data.CUE_KINDS) + ['null', 'tag']
  names = list(harmonise.KINDS) + ['all']
  lines = header(f'Verdict worlds on the real face ResNet (issue 23): {FLAGS.n} rows, cue '
                 f'strength {FLAGS.cue_strength}, {FLAGS.permutations} permutations')
  lines += ['| world | cue | CNN ROC-AUC (CI) | ' + ' | '.join(names) + ' | verdict | named | '
            'right |', '|---|---|---|' + '---:|' * len(names) + '---|---|---|']
  for kind in kinds:
    path = root / f'{kind}-{FLAGS.n}.npz'
    if not path.is_file():
      print('not cached:', kind, flush=True)
      continue
    w = _load_world(path)
    t0 = time.time()
    x = featurize(w['images'])
    v = evaluate.evaluate_features(config, x, w['label'], w['fold'], 2, images=w['images'],
                                   conditions=w['conditions'], featurize=featurize,
                                   targets=w['targets'])
    hm = v.get('harmonised') or {}
    cells = [f'{hm[n]["cv_score"]:.3f}{"" if hm[n]["beats_chance"] else "*"}' if n in hm
             else '-' for n in names]
    cat = ('condition' if kind in demo_data.CONDITION_KINDS else 'null' if kind == 'null'
           else 'facial')
    want = {'condition': 'photos predict grades through photo conditions',
            'facial': 'faces predict grades', 'null': 'not distinguishable from chance'}[cat]
    named = (', '.join(hm.get('removed_by') or []) or
             (v.get('facial_aspect') or {}).get('aspect', '') or
             ('all together' if hm and not hm.get('survives') else '') or
             ', '.join(v.get('explained_by', [])))
    lines.append(f'| {kind} | {cat} | {v["cv_score"]:.3f} ({v["ci95"][0]:.3f}-'
                 f'{v["ci95"][1]:.3f}) | ' + ' | '.join(cells) + f' | {v["answer"]} | {named} | '
                 f'{"right" if v["answer"] == want else "WRONG"} |')
    print(lines[-1], f'{time.time() - t0:.0f} s', flush=True)
  lines += ['', 'Harmonised columns: ROC-AUC of the CNN\'s features on those chips (ridge '
            'head, same folds/permutations/bootstrap); * = at chance (p >= alpha or CI '
            'touching 0.5).']
  return lines


def null_real() -> list[str]:
  """Null calibration on the real face ResNet: one cached photo set (the null world), the
  CNN's features and every harmonisation's chips and features computed once; each world a
  new random labelling (a permutation of the labels: independent of the photos, i.e. the
  null), its own stratified folds and seed; the whole evaluation (CV head, permutations,
  battery, re-test, decision) per world."""
  from gradejax.data import labels
  from gradejax.evaluation import confounds, evaluate, harmonise
  from gradejax.nets import extractor
  config = _real_config(FLAGS.permutations)
  module, variables = extractor.load_face_resnet()
  featurize = evaluate.featurizer(config, module, variables)
  w = _load_world(pathlib.Path(FLAGS.cache) / f'null-{FLAGS.n}.npz')
  images = w['images']
  chips_cache, feat_cache = {}, {}
  plain = harmonise.harmonise

  def memo_harmonise(imgs, kinds, **kw):  # label-free: the same chips in every world
    if imgs is not images:
      return plain(imgs, kinds, **kw)
    if kinds not in chips_cache:
      chips_cache[kinds] = plain(imgs, kinds, **kw)
    return chips_cache[kinds]

  def memo_featurize(chips):
    key = hash(chips.tobytes())
    if key not in feat_cache:
      feat_cache[key] = featurize(chips)
    return feat_cache[key]

  harmonise.harmonise = memo_harmonise
  x = memo_featurize(images)
  answers, ps = [], {k: [] for k in list(harmonise.KINDS) + ['all', 'reference']}
  cnn_p = []
  t_end = time.time() + 60 * FLAGS.max_minutes
  for i in range(FLAGS.worlds):
    if time.time() > t_end:
      break
    rng = np.random.default_rng([i, 2323])
    y = rng.permutation(w['label']).astype(np.int32)
    config.seed = i
    fold = labels.stratified_folds(y, 5, i)
    v = evaluate.evaluate_features(config, x, y, fold, 2, images=images,
                                   conditions=w['conditions'], featurize=memo_featurize,
                                   targets=w['targets'])
    answers.append(v['answer'])
    cnn_p.append(v['p_value'])
    for k in ps:
      ps[k].append(v['harmonised'][k]['p_value'])
    if i % 10 == 9:
      print(i + 1, 'worlds', dict(zip(*np.unique(answers, return_counts=True))), flush=True)
  harmonise.harmonise = plain
  m = len(answers)
  a = np.array(answers)
  share = float(np.mean(a != confounds.CHANCE))
  lo, hi = _wilson(int(np.sum(a != confounds.CHANCE)), m)
  lines = header(f'Null calibration on the real face ResNet (issue 23): {m} null worlds') + [
      f'{m} of the {FLAGS.worlds} asked worlds ran (cap {FLAGS.max_minutes:.0f} min). One '
      f'generated photo set ({len(images)} rows, cue strength 0, seed 0), prepared once; the '
      f'face ResNet\'s features of the original chips and of each harmonisation computed once; '
      f'each world a fresh random permutation of the labels with its own stratified folds and '
      f'seed, then the whole evaluation: the CNN\'s CV head ({FLAGS.permutations} '
      f'permutations), the battery (real photo-condition features of these photos), '
      f'incremental validity, the harmonised re-test and the decision.', '',
      '| answer | share |', '|---|---:|'] + [
      f'| {k} | {np.mean(a == k):.3f} |' for k in confounds.ANSWERS] + [
      '', f'Share answered faces or photo conditions: **{share:.3f}** (95% Wilson CI '
      f'{lo:.3f}-{hi:.3f}; alpha 0.05).', '',
      '| p-value of | share < 0.05 | KS p vs uniform |', '|---|---:|---:|',
      f'| CNN (logistic head) | {np.mean(np.array(cnn_p) < 0.05):.3f} | '
      f'{scipy_stats.kstest(cnn_p, "uniform").pvalue:.2f} |'] + [
      f'| re-test {k} | {np.mean(np.array(v) < 0.05):.3f} | '
      f'{scipy_stats.kstest(v, "uniform").pvalue:.2f} |' for k, v in ps.items()] + [
      '', 'What this design covers: the labels are independent of the photos, so every world '
      'is a null world for the whole decision (CNN test, battery with Holm, incremental '
      'validity, re-test), with real chips, real photo conditions and the real ResNet. What '
      'it does not: the photos are the same in every world (one draw of faces and '
      'conditions), so the variation between photo sets is not sampled, and the worlds '
      'share photos, so they are not fully independent (the Wilson CI is then a little '
      'narrow); permutation p-values are discrete at 1/(permutations+1).']
  return lines


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
  if n == 0:
    return float('nan'), float('nan')
  p = k / n
  d = 1 + z * z / n
  c = (p + z * z / (2 * n)) / d
  h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
  return float(c - h), float(c + h)


def main(argv) -> None:
  del argv
  lines = {'worlds': worlds, 'retest_timing': retest_timing, 'nulls': nulls, 'cache': cache,
           'lab': lab, 'null_real': null_real}[FLAGS.part]()
  text = '\n'.join(lines) + '\n'
  print(text)
  if FLAGS.append:
    with open(os.path.join(os.path.dirname(__file__), 'RESULTS.md'), 'a') as f:
      f.write(text)


if __name__ == '__main__':
  app.run(main)
