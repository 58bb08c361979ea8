"""The photo-condition battery (issue 11): its cost on the demo's shape, and valid p-values.

  .venv/bin/python benchmarks/confounds.py [--worlds 100] [--n 200] [--null_permutations 200]
      [--first_world 0] [--append]

1. Timing, demo shape: 430 rows, 1000 permutations, 5-fold x 1 repeat (configs/demo.py): the
   image features of 430 random 150x150 chips (colour statistics, blurred photo), then the
   battery (five feature sets of the demo's widths, ridge head, bootstrap 1000) and the
   incremental-validity test; side by side with the reference, the CNN's logistic head
   (200 Adam steps) permutation-tested on one 40-D feature set, extrapolated to five.
   Prepare's added cost per row (quality features, background, 68 landmarks + pose) is timed
   on demo portraits.
2. Null uniformity: ``--worlds`` null worlds (labels independent of every feature set), each
   baseline's permutation p-value and the incremental test's; the share below 0.05 and a
   Kolmogorov-Smirnov test against the uniform law (p-values of a valid test are uniform up to
   the permutation grid).
"""
from __future__ import annotations

import datetime
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

from configs import demo  # noqa: E402
from gradejax.data import labels  # noqa: E402
from gradejax.evaluation import confounds, crossval  # noqa: E402

flags.DEFINE_integer('worlds', 100, 'null worlds for the uniformity check')
flags.DEFINE_integer('first_world', 0, 'seed of the first null world (a fresh sample)')
flags.DEFINE_integer('n', 200, 'rows per null world')
flags.DEFINE_integer('null_permutations', 200, 'permutations per null world')
flags.DEFINE_bool('append', False, 'append the result to benchmarks/RESULTS.md')
FLAGS = flags.FLAGS
WIDTHS = {'image_statistics': 40, 'image_quality': 17, 'blurred_photo': 108, 'background': 52,
          'face_geometry': 140}


def timing(config) -> list[str]:
  n = 430
  rng = np.random.default_rng(0)
  y = (rng.uniform(size=n) < 0.5).astype(np.int32)
  folds = labels.stratified_folds(y, 5, 0)[None]
  chips = rng.integers(0, 256, (n, 150, 150, 3), dtype=np.uint8)
  t0 = time.perf_counter()
  sets = {'image_statistics': confounds.image_statistics(chips),
          'blurred_photo': confounds.blurred_photo(chips)}
  feat_s = time.perf_counter() - t0
  for name, d in WIDTHS.items():
    if name not in sets:
      sets[name] = rng.normal(size=(n, d)).astype(np.float32)
  perms = crossval.label_permutations(folds, config.num_permutations, 1)
  t0 = time.perf_counter()
  bat = confounds.battery(config.metric, sets, y, folds, perms, 2, config.baseline_ridge,
                          config.bootstrap, 2, config.permutation_chunk)
  bat_s = time.perf_counter() - t0
  cnn_oof = np.stack([1 - (p := rng.uniform(size=(1, n))), p], -1).astype(np.float32)
  t0 = time.perf_counter()
  confounds.incremental(config.metric, bat, ['image_statistics'], cnn_oof, y, folds, perms, 2,
                        config.baseline_ridge, config.permutation_chunk)
  inc_s = time.perf_counter() - t0
  h = crossval.from_config(config, 2)
  t0 = time.perf_counter()
  crossval.permutation_scores(h, sets['image_statistics'], y, folds, jax.random.key(0),
                              config.num_permutations, config.permutation_chunk, 1)
  ref_one = time.perf_counter() - t0
  ours = feat_s + bat_s + inc_s
  ref = feat_s + 5 * ref_one
  # Prepare's per-row cost on demo portraits.
  from gradejax.data import demo_data, faces, photo_quality
  models, lm = faces.load_models(), photo_quality.load_landmarks68()
  rows = []
  for r in range(12):
    img, _, _ = demo_data.render_row(0, r, False)
    data = demo_data.encode_jpeg(img)
    face, _ = faces.find_face(models, img)
    t0 = time.perf_counter()
    photo_quality.row_conditions(data, img, face, lm, 150)
    rows.append(time.perf_counter() - t0)
  return [
      f'Timing, demo shape ({n} rows, {config.num_permutations} permutations, 5-fold x 1, '
      f'bootstrap {config.bootstrap}):', '',
      '| | seconds |', '|---|---:|',
      f'| chip features (colour statistics + blurred photo, 430 chips) | {feat_s:.1f} |',
      f'| battery: 5 feature sets, ridge head, permutations + bootstrap | {bat_s:.1f} |',
      f'| incremental validity (stacked, CNN column permuted) | {inc_s:.1f} |',
      f'| **total added by the battery** | **{ours:.1f}** |',
      f'| reference: the CNN\'s logistic head on 1 set ({ref_one:.1f} s) x 5 sets + features '
      f'| {ref:.1f} |', '',
      f'Ratio reference / ours: {ref / ours:.1f}x; target <= 60 s added: '
      f'{"met" if ours <= 60 else "NOT met"}. Prepare adds {1000 * np.median(rows):.0f} ms per '
      f'row (median of 12 demo portraits: quality, background, 68 landmarks, pose), '
      f'{430 * np.median(rows):.1f} s for 430 rows.']


def uniformity(config) -> list[str]:
  n, w = FLAGS.n, FLAGS.worlds
  p = {name: [] for name in WIDTHS}
  p['incremental'] = []
  for s in range(FLAGS.first_world, FLAGS.first_world + w):
    rng = np.random.default_rng([s, 99])
    y = (rng.uniform(size=n) < 0.3).astype(np.int32)  # imbalanced, like a pass/fail split
    folds = labels.stratified_folds(y, 5, s)[None]
    sets = {k: rng.normal(size=(n, d)).astype(np.float32) for k, d in WIDTHS.items()}
    sets['image_quality'][:, :3] = rng.integers(0, 3, (n, 3))  # discrete columns, ties
    perms = crossval.label_permutations(folds, FLAGS.null_permutations, s + 1)
    bat = confounds.battery(config.metric, sets, y, folds, perms, 2, config.baseline_ridge, 0,
                            0, 100)
    for k, b in bat.items():
      p[k].append(b['p_value'])
    cnn = rng.uniform(0.05, 0.95, (1, n))
    inc = confounds.incremental(config.metric, bat, ['background'],
                                np.stack([1 - cnn, cnn], -1), y, folds, perms, 2,
                                config.baseline_ridge, 100)
    p['incremental'].append(inc['p_value'])
  lines = [f'Null uniformity: {w} null worlds (seeds {FLAGS.first_world}-'
           f'{FLAGS.first_world + w - 1}) of {n} rows (30% positives), '
           f'{FLAGS.null_permutations} permutations each:', '',
           '| p-value of | share < 0.05 | share < 0.10 | KS p vs uniform |', '|---|---:|---:|---:|']
  for k, v in p.items():
    v = np.asarray(v)
    lines.append(f'| {k} | {np.mean(v < 0.05):.3f} | {np.mean(v < 0.10):.3f} | '
                 f'{scipy_stats.kstest(v, "uniform").pvalue:.2f} |')
  se = np.sqrt(0.05 * 0.95 / w)
  lines += ['', f'A valid test gives shares near 0.05 / 0.10 (binomial sd {se:.3f} at 0.05 for '
                f'{w} worlds) and a KS p that is not small.']
  return lines


def main(argv) -> None:
  del argv
  config = demo.get_config()
  load = os.getloadavg()[0]
  lines = ['', '## Photo-condition battery (issue 11)', '',
           f'`benchmarks/confounds.py`; {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; '
           f'2-core CPU, this sandbox (`nproc` = {os.cpu_count()}, shared: load average '
           f'{load:.1f}); jax {jax.__version__}.', '']
  lines += timing(config) + [''] + uniformity(config)
  text = '\n'.join(lines) + '\n'
  print(text)
  if FLAGS.append:
    with open(os.path.join(os.path.dirname(__file__), 'RESULTS.md'), 'a') as f:
      f.write(text)


if __name__ == '__main__':
  app.run(main)
