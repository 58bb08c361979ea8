r"""Honest evaluation of a run: repeated stratified CV, permutation test, bootstrap, baselines.

  python -m gradejax.evaluate --workdir DIR

Writes ``DIR/eval/verdict.json`` and ``DIR/eval/verdict.txt``. The verdict is "predictable"
only when the permutation p-value is below ``config.alpha`` AND the bootstrap CI of the CV score
lies above chance; a WARNING is added when the image-statistics baseline (colour/brightness
histograms, no face) scores within the CNN's CI: then the photos' conditions, not faces, may
carry the signal.
"""
from __future__ import annotations

import json
import logging
import pathlib
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from gradejax import logs
from gradejax import stats
from gradejax.evaluation import crossval
from gradejax.training import input_pipeline


def evaluate_features(config, x: np.ndarray, y: np.ndarray, fold: np.ndarray, num_classes: int,
                      images: np.ndarray | None = None, grade: np.ndarray | None = None
                      ) -> dict[str, Any]:
  """The verdict dict for features ``x [N, D]``, labels ``y [N]`` and dataset folds [N]."""
  t0 = time.time()
  h = crossval.from_config(config, num_classes)
  folds = crossval.cv_folds(y, fold, config.cv_folds, config.cv_repeats, config.seed)
  key = jax.random.fold_in(jax.random.key(config.seed), 2)
  score, oof = crossval.observed(h, x, y, folds, key)
  null = crossval.permutation_scores(h, x, y, folds, key, config.num_permutations,
                                      config.permutation_chunk, config.seed + 1)
  p = crossval.p_value(score, null)
  boot = crossval.bootstrap(h, y, oof, config.bootstrap, config.seed + 2)
  lo, hi = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
  chance = stats.chance_level(config.metric, num_classes)
  predictable = bool(p < config.alpha and lo > chance)
  r0 = stats.classification_report(jnp.asarray(y), jnp.asarray(oof[0]), num_classes)
  out: dict[str, Any] = {
      'verdict': 'predictable' if predictable else 'not distinguishable from chance',
      'predictable': predictable, 'metric': config.metric, 'cv_score': score,
      'ci95': [lo, hi], 'chance': chance, 'p_value': p, 'alpha': config.alpha,
      'num_permutations': int(config.num_permutations),
      'null_mean': float(null.mean()), 'null_q95': float(np.percentile(null, 95)),
      'folds': int(config.cv_folds), 'repeats': int(config.cv_repeats),
      'num_examples': int(len(y)), 'class_counts': np.bincount(y, minlength=num_classes).tolist(),
      'head': {'widths': list(h.widths), 'steps': h.steps, 'balanced': h.balanced},
      'repeat0': {k: np.asarray(v).tolist() for k, v in r0.items()},
      'baselines': {'majority_class': crossval.majority_class(h, y, folds)},
  }
  if images is not None:
    s, oof_s = crossval.observed(h, input_pipeline.image_statistics(images), y, folds, key)
    b = crossval.bootstrap(h, y, oof_s, config.bootstrap, config.seed + 2)
    out['baselines']['image_statistics'] = {
        'cv_score': s, 'ci95': [float(v) for v in np.percentile(b, [2.5, 97.5])]}
    s_lo, s_hi = out['baselines']['image_statistics']['ci95']
    # Photo statistics that beat chance and match the CNN within either CI: a confound alarm.
    if s_lo > chance and (s >= lo or s_hi >= score):
      out['warning'] = (
          f'The image-statistics baseline (colour/brightness histograms only, no face) scores '
          f'{s:.3f}, within or above the CNN\'s 95% CI [{lo:.3f}, {hi:.3f}]: photo conditions '
          f'(camera, light, background) may explain whatever the CNN finds.')
  if grade is not None:
    out['grade_regression'] = crossval.ridge_grade(x, grade, folds)
  out['seconds'] = time.time() - t0
  # Not JSON: write_verdict stores these in eval/arrays.npz for the report's figures.
  out['arrays'] = {'null': np.asarray(null), 'oof': np.asarray(oof[0]), 'label': np.asarray(y),
                   'bootstrap': np.asarray(boot)}
  return out


def verdict_text(v: dict[str, Any]) -> str:
  lines = [
      f'Verdict: {v["verdict"].upper()}',
      f'{v["metric"]} (cross-validated, {v["folds"]}-fold x {v["repeats"]}): {v["cv_score"]:.3f} '
      f'(95% bootstrap CI {v["ci95"][0]:.3f}-{v["ci95"][1]:.3f}; chance {v["chance"]:.3f})',
      f'Permutation test: p = {v["p_value"]:.4f} ({v["num_permutations"]} label shuffles; '
      f'alpha {v["alpha"]}); shuffled labels score {v["null_mean"]:.3f} on average.',
      f'Baselines: majority class {v["baselines"]["majority_class"]["cv_score"]:.3f} (plain '
      f'accuracy {v["baselines"]["majority_class"]["accuracy"]:.3f})',
  ]
  if 'image_statistics' in v['baselines']:
    b = v['baselines']['image_statistics']
    lines[-1] += (f'; image statistics only {b["cv_score"]:.3f} '
                  f'(CI {b["ci95"][0]:.3f}-{b["ci95"][1]:.3f})')
  lines.append(f'Examples: {v["num_examples"]} (per class {v["class_counts"]}).')
  if 'warning' in v:
    lines.append('WARNING: ' + v['warning'])
  if not v['predictable']:
    lines.append('Grades cannot be told from these photos better than by chance, at this '
                 'sample size; this is not proof that no relation exists.')
  return '\n'.join(lines) + '\n'


def write_verdict(workdir: str | pathlib.Path, v: dict[str, Any]) -> pathlib.Path:
  """verdict.json, verdict.txt and, when ``v['arrays']`` is there, eval/arrays.npz: ``null``
  (permutation scores [P]), ``oof`` (out-of-fold probabilities of repeat 0 [N, C]), ``label``
  [N] and ``bootstrap`` (scores [B]), read by gradejax.report.verdict for its figures."""
  out = pathlib.Path(workdir) / 'eval'
  out.mkdir(parents=True, exist_ok=True)
  arrays = v.get('arrays')
  if isinstance(arrays, dict):
    np.savez_compressed(out / 'arrays.npz', **{k: np.asarray(a) for k, a in arrays.items()})
  (out / 'verdict.json').write_text(json.dumps({k: x for k, x in v.items() if k != 'arrays'},
                                               indent=2))
  (out / 'verdict.txt').write_text(verdict_text(v))
  return out / 'verdict.json'


def evaluate_workdir(workdir: str | pathlib.Path, config=None, data: dict | None = None,
                     features: np.ndarray | None = None) -> dict[str, Any]:
  """Evaluates a training run's cached view-0 features; writes and returns the verdict."""
  from gradejax.nets import extractor
  from gradejax.training import runs
  if config is None:
    config = runs.load_config(workdir)
  if data is None:
    data = input_pipeline.load_dataset(config)
  if features is None:
    module, variables = extractor.load_face_resnet()
    features = input_pipeline.cached_features(config, data, workdir, module, variables,
                                              input_pipeline.weights_id(config))
  v = evaluate_features(config, features[0], data['label'], data['fold'], data['num_classes'],
                        images=data['images'], grade=data['grade'])
  write_verdict(workdir, v)
  logging.info('%s', verdict_text(v))
  return v


def main(argv: Sequence[str]) -> None:
  del argv
  logs.quiet_libraries()
  v = evaluate_workdir(flags.FLAGS.workdir)
  print(verdict_text(v), end='')


def command() -> None:
  """The ``gradejax.evaluate`` command: defines its flags, parses argv, runs :func:`main`."""
  flags.DEFINE_string('workdir', None, 'work directory of a training run', required=True)
  app.run(main)
