r"""Honest evaluation of a run: repeated stratified CV, permutation test, bootstrap, baselines.

  python -m gradejax.evaluate --workdir DIR

Writes ``DIR/eval/verdict.json`` and ``DIR/eval/verdict.txt``. The CNN alone is "predictable"
only when the permutation p-value is below ``config.alpha`` AND the bootstrap CI of the CV score
lies above chance. The answer (``answer``) is one of three (:mod:`confounds`): faces predict
grades, photos predict grades through photo conditions (the baselines that do are named), or
not distinguishable from chance (with the minimum detectable ROC-AUC, :mod:`power`). Every run
appends to the workspace's ledger of analyses (:mod:`ledger`) and reports a Holm-adjusted p.
"""
from __future__ import annotations

import io
import json
import logging
import pathlib
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from gradejax import errors, logs
from gradejax import stats
from gradejax.evaluation import confounds, crossval, ledger, power
from gradejax.training import input_pipeline


def evaluate_features(config, x: np.ndarray, y: np.ndarray, fold: np.ndarray, num_classes: int,
                      images: np.ndarray | None = None, grade: np.ndarray | None = None,
                      conditions: dict[str, np.ndarray] | None = None,
                      groups: np.ndarray | None = None) -> dict[str, Any]:
  """The verdict dict for features ``x [N, D]``, labels ``y [N]`` and dataset folds [N].

  images: chips [N, H, W, 3] for the image-statistics and blurred-photo baselines;
  conditions: more baseline feature sets, name -> float [N, D] (see
  :func:`confounds.condition_features`); groups: [N] group names: folds keep groups together
  and permutations shuffle within groups.
  """
  t0 = time.time()
  h = crossval.from_config(config, num_classes)
  if groups is not None:
    groups = np.asarray(groups).astype(str)
    folds = crossval.group_folds(y, groups, config.cv_folds, config.cv_repeats, config.seed)
  else:
    folds = crossval.cv_folds(y, fold, config.cv_folds, config.cv_repeats, config.seed)
  cells = np.bincount(crossval.strata(folds, groups))
  if np.median(cells) < 4:  # labels are shuffled within these cells (crossval.strata)
    logging.warning('%d folds x %d repeats cut %d rows into %d cells of median size %.0f: the '
                    'permutation test shuffles labels within cells and loses power; use fewer '
                    'cv_repeats.', folds.max() + 1, len(folds), len(y), len(cells),
                    np.median(cells))
  key = jax.random.fold_in(jax.random.key(config.seed), 2)
  score, oof = crossval.observed(h, x, y, folds, key)
  null = crossval.permutation_scores(h, x, y, folds, key, config.num_permutations,
                                      config.permutation_chunk, config.seed + 1, groups)
  p = crossval.p_value(score, null)
  boot = crossval.bootstrap(h, y, oof, config.bootstrap, config.seed + 2)
  lo, hi = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
  chance = stats.chance_level(config.metric, num_classes)
  predictable = bool(p < config.alpha and lo > chance)
  r0 = stats.classification_report(jnp.asarray(y), jnp.asarray(oof[0]), num_classes)
  counts = np.bincount(y, minlength=num_classes)
  out: dict[str, Any] = {
      'verdict': 'predictable' if predictable else 'not distinguishable from chance',
      'predictable': predictable, 'metric': config.metric, 'cv_score': score,
      'ci95': [lo, hi], 'chance': chance, 'p_value': p, 'alpha': config.alpha,
      'num_permutations': int(config.num_permutations),
      'null_mean': float(null.mean()), 'null_q95': float(np.percentile(null, 95)),
      'folds': int(folds.max()) + 1, 'repeats': int(config.cv_repeats),
      'num_examples': int(len(y)), 'class_counts': counts.tolist(),
      'head': {'widths': list(h.widths), 'steps': h.steps, 'balanced': h.balanced},
      'repeat0': {k: np.asarray(v).tolist() for k, v in r0.items()},
      'baselines': {'majority_class': crossval.majority_class(h, y, folds)},
  }
  # The photo-condition battery: same folds, same permutations, a closed-form ridge head.
  t1 = time.time()
  sets = {}
  if images is not None:
    sets['image_statistics'] = confounds.image_statistics(images)
    sets['blurred_photo'] = confounds.blurred_photo(images, float(config.get('blur_sigma', 12.0)))
  sets.update(conditions or {})
  ridge = float(config.get('baseline_ridge', 0.1))
  # The CNN's permutations (permutation_scores): within folds (and groups), same seed.
  perms = crossval.label_permutations(folds, config.num_permutations, config.seed + 1, groups)
  bat = confounds.battery(config.metric, sets, y, folds, perms, num_classes, ridge,
                          config.bootstrap, config.seed + 2, config.permutation_chunk)
  explained = [n for n, b in bat.items() if confounds.beats_chance(b, chance, config.alpha)]
  incr = None
  if bat:
    against = explained or [max(bat, key=lambda n: bat[n]['cv_score'])]
    incr = confounds.incremental(config.metric, bat, against, oof, y, folds, perms,
                                 num_classes, ridge, config.permutation_chunk)
  answer, explained = confounds.decide(predictable, bat, incr, chance, config.alpha)
  for n, b in bat.items():
    out['baselines'][n] = dict({k: v for k, v in b.items() if k != 'oof'},
                               description=confounds.DESCRIPTIONS.get(n, n),
                               beats_chance=n in explained, head='ridge')
  out.update(answer=answer, explained_by=explained, incremental=incr,
             baseline_head={'kind': 'ridge', 'ridge': ridge, 'p_adjustment': 'holm'})
  out['power'] = power.power_statement(counts, config.alpha,
                                       float(np.percentile(null, 100 * (1 - config.alpha))),
                                       config.metric, float(config.get('power', 0.8)))
  warnings = []
  if answer == confounds.CONDITIONS:
    named = ', '.join(f'{confounds.DESCRIPTIONS.get(n, n)} ({bat[n]["cv_score"]:.3f})'
                      for n in explained)
    warnings.append(f'Photo conditions, not faces, carry the signal: {named} beat chance'
                    + (' and the CNN adds nothing to them.' if predictable else '.'))
  if groups is not None:
    out['groups'] = confounds.group_association(y, groups, config.num_permutations,
                                                config.seed + 3)
    if out['groups']['p_value'] < config.alpha:
      warnings.append(
          f'The group column alone predicts the label (chi-square permutation p = '
          f'{out["groups"]["p_value"]:.4f} over {out["groups"]["num_groups"]} groups): '
          f'grades differ between cohorts/sessions. Folds and permutations respect groups, '
          f'but anything that tells the groups apart (camera, light) would predict grades.')
  if warnings:
    out['warning'] = ' '.join(warnings)
  if grade is not None:
    out['grade_regression'] = crossval.ridge_grade(x, grade, folds)
  out['battery_seconds'] = time.time() - t1
  out['seconds'] = time.time() - t0
  # Not JSON: write_verdict stores these in eval/arrays.npz for the report's figures.
  out['arrays'] = {'null': np.asarray(null), 'oof': np.asarray(oof[0]), 'label': np.asarray(y),
                   'bootstrap': np.asarray(boot)}
  return out


def _baseline_line(name: str, b: dict[str, Any]) -> str:
  if name == 'majority_class':
    return (f'  majority class: {b["cv_score"]:.3f} (plain accuracy {b["accuracy"]:.3f})')
  mark = ' <- beats chance' if b.get('beats_chance') else ''
  return (f'  {b.get("description", name)}: {b["cv_score"]:.3f} (CI {b["ci95"][0]:.3f}-'
          f'{b["ci95"][1]:.3f}; p = {b["p_value"]:.4f}, Holm {b["p_holm"]:.4f}){mark}')


def verdict_text(v: dict[str, Any]) -> str:
  answer = v.get('answer', v['verdict'])
  lines = [f'Verdict: {answer.upper()}']
  named = [v['baselines'][n] for n in v.get('explained_by', [])]
  names = ', '.join(f'{b["description"]} ({b["cv_score"]:.3f}, CI {b["ci95"][0]:.3f}-'
                    f'{b["ci95"][1]:.3f})' for b in named)
  incr = v.get('incremental')
  if answer == confounds.CONDITIONS:
    lines.append(f'The photos tell the grades apart through photo conditions: {names}.')
    if v['predictable'] and incr:
      lines.append(f'The CNN adds nothing beyond them: stacked {incr["with_cnn_score"]:.3f} vs '
                   f'{incr["baselines_score"]:.3f} without the CNN (p = {incr["p_value"]:.4f}).')
    elif not v['predictable']:
      lines.append('The CNN on the faces is not distinguishable from chance, but that does not '
                   'mean the photos carry nothing.')
  elif answer == confounds.FACES and named:
    lines.append(f'Photo conditions also carry some signal ({names}), but the CNN adds to them: '
                 f'stacked {incr["with_cnn_score"]:.3f} vs {incr["baselines_score"]:.3f} '
                 f'(p = {incr["p_value"]:.4f}).')
  lines += [
      f'CNN: {v["metric"]} (cross-validated, {v["folds"]}-fold x {v["repeats"]}) '
      f'{v["cv_score"]:.3f} (95% bootstrap CI {v["ci95"][0]:.3f}-{v["ci95"][1]:.3f}; chance '
      f'{v["chance"]:.3f}); {v["verdict"]}.',
      f'Permutation test: p = {v["p_value"]:.4f} ({v["num_permutations"]} label shuffles; '
      f'alpha {v["alpha"]}); shuffled labels score {v["null_mean"]:.3f} on average.',
      'Baselines (same folds and label shuffles; photo conditions with a ridge head, p '
      'Holm-adjusted over them):',
  ]
  lines += [_baseline_line(n, b) for n, b in v['baselines'].items()]
  if incr and answer != confounds.CONDITIONS and not named:
    lines.append(f'Incremental validity: the CNN with {", ".join(incr["against"])} '
                 f'{incr["with_cnn_score"]:.3f} vs {incr["baselines_score"]:.3f} without '
                 f'(p = {incr["p_value"]:.4f}).')
  lines.append(f'Examples: {v["num_examples"]} (per class {v["class_counts"]}).')
  if 'ledger' in v:
    lg = v['ledger']
    lines.append(f'Analyses run on this dataset: {lg["analyses"]} (ledger {lg["path"]}); this '
                 f'p = {v["p_value"]:.4f}, Holm-adjusted over them {lg["p_holm"]:.4f}.')
  if 'warning' in v:
    lines.append('WARNING: ' + v['warning'])
  if answer == confounds.CHANCE:
    pw = v.get('power')
    seen = (f' (the smallest ROC-AUC this test detects with {pw["power"]:.0%} power at this '
            f'N and class balance is {pw["min_detectable_auc"]:.3f})' if pw else '')
    lines.append('Grades cannot be told from these photos better than by chance, at this '
                 f'sample size{seen}; this is not proof that no relation exists.')
  elif v.get('power') and not v['predictable']:
    lines.append(f'CNN at chance; the smallest ROC-AUC it would detect with '
                 f'{v["power"]["power"]:.0%} power is {v["power"]["min_detectable_auc"]:.3f}.')
  return '\n'.join(lines) + '\n'


def write_verdict(workdir: str | pathlib.Path, v: dict[str, Any]) -> pathlib.Path:
  """verdict.json, verdict.txt and, when ``v['arrays']`` is there, eval/arrays.npz: ``null``
  (permutation scores [P]), ``oof`` (out-of-fold probabilities of repeat 0 [N, C]), ``label``
  [N] and ``bootstrap`` (scores [B]), read by gradejax.report.verdict for its figures."""
  out = pathlib.Path(workdir) / 'eval'
  out.mkdir(parents=True, exist_ok=True)
  arrays = v.get('arrays')
  if isinstance(arrays, dict):  # each file replaced atomically: never half-written or empty
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(a) for k, a in arrays.items()})
    errors.write_atomic(out / 'arrays.npz', buf.getvalue())
  errors.write_atomic(out / 'verdict.json', json.dumps({k: x for k, x in v.items()
                                                         if k != 'arrays'}, indent=2))
  errors.write_atomic(out / 'verdict.txt', verdict_text(v))
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
  conditions, groups = _photo_conditions(config, data)
  v = evaluate_features(config, features[0], data['label'], data['fold'], data['num_classes'],
                        images=data['images'], grade=data['grade'], conditions=conditions,
                        groups=groups)
  v['ledger'] = ledger.record(ledger.default_path(config), {
      'dataset': ledger.dataset_key(data), 'config_hash': ledger.config_hash(config),
      'workdir': str(pathlib.Path(workdir).absolute()), 'metric': v['metric'],
      'cv_score': v['cv_score'], 'p_value': v['p_value'], 'answer': v['answer']})
  write_verdict(workdir, v)
  logging.info('%s', verdict_text(v))
  return v


def _photo_conditions(config, data: dict):
  """(baseline feature sets, groups or None) from ``DATA_DIR/photo_conditions.csv``; (None,
  None) for a dataset prepared before that table existed."""
  from gradejax.data import photo_quality
  path = pathlib.Path(config.data_dir).expanduser() / 'photo_conditions.csv'
  if not path.is_file():
    logging.warning('%s missing (prepared by an older gradejax): the image-quality, background '
                    'and geometry baselines are skipped; re-run prepare to get them.', path)
    return None, None
  rows = photo_quality.read_csv(path)
  groups = np.array([rows[int(r)]['group'] for r in data['source_row']], dtype=str)
  return (confounds.condition_features(rows, data['source_row']),
          groups if (groups != '').all() and len(np.unique(groups)) > 1 else None)
