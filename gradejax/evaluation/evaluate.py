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
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gradejax import batching, errors, logs, progress
from gradejax import stats
from gradejax.evaluation import confounds, crossval, harmonise, ledger, power, wording
from gradejax.training import input_pipeline


def evaluate_features(config, x: np.ndarray, y: np.ndarray, fold: np.ndarray, num_classes: int,
                      images: np.ndarray | None = None, grade: np.ndarray | None = None,
                      conditions: dict[str, np.ndarray] | None = None,
                      groups: np.ndarray | None = None,
                      featurize: Callable[[np.ndarray], np.ndarray] | None = None,
                      targets: dict[str, Any] | None = None) -> dict[str, Any]:
  """The verdict dict for features ``x [N, D]``, labels ``y [N]`` and dataset folds [N].

  images: chips [N, H, W, 3] for the image-statistics and blurred-photo baselines;
  conditions: more baseline feature sets, name -> float [N, D] (see
  :func:`confounds.condition_features`); groups: [N] group names: folds keep groups together
  and permutations shuffle within groups; featurize: uint8 chips [N, H, W, 3] -> the CNN's
  features [N, D] (``x`` is ``featurize(images)``): with ``images``, the harmonised re-test
  (:mod:`harmonise`, ``targets`` from :func:`harmonise.settings`) runs when
  ``config.harmonise`` is on.
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
  # One set of permutations for every test here (the CNN's, the battery's, the re-test's).
  perms = crossval.label_permutations(folds, config.num_permutations, config.seed + 1, groups)
  key = jax.random.fold_in(jax.random.key(config.seed), 2)
  score, oof = crossval.observed(h, x, y, folds, key)
  with progress.task('evaluate: CNN permutations', total=len(perms)) as task:
    null = crossval.permutation_scores(h, x, y, folds, key, config.num_permutations,
                                        config.permutation_chunk, config.seed + 1, groups,
                                        perms=perms, progress=task)
  p = crossval.p_value(score, null)
  boot = crossval.bootstrap(h, y, oof, config.bootstrap, config.seed + 2)
  lo, hi = crossval.bootstrap_ci(boot)
  chance = stats.chance_level(config.metric, num_classes)
  predictable = bool(p < config.alpha and lo > chance)
  r0 = stats.classification_report(jnp.asarray(y), jnp.asarray(oof[0]), num_classes)
  counts = np.bincount(y, minlength=num_classes)
  min_gain = float(config.get('min_gain', confounds.DEFAULT_MIN_GAIN))
  out: dict[str, Any] = {
      'verdict': 'predictable' if predictable else 'not distinguishable from chance',
      'predictable': predictable, 'metric': config.metric, 'cv_score': score,
      'ci95': [lo, hi], 'chance': chance, 'p_value': p, 'alpha': config.alpha,
      'min_gain': min_gain, 'num_permutations': int(config.num_permutations),
      'null_mean': float(null.mean()), 'null_q95': float(np.percentile(null, 95)),
      'folds': int(folds.max()) + 1, 'repeats': int(config.cv_repeats),
      'num_examples': int(len(y)), 'class_counts': counts.tolist(),
      'head': {'widths': list(h.widths), 'steps': h.steps, 'balanced': h.balanced},
      'repeat0': {k: np.asarray(v).tolist() for k, v in r0.items()},
      'baselines': {'majority_class': crossval.majority_class(h, y, folds)},
  }
  t1 = time.time()
  ridge = float(config.get('baseline_ridge', 0.1))
  chunk, nboot, bseed = config.permutation_chunk, config.bootstrap, config.seed + 2
  # The harmonised re-test (an intervention): the CNN's features on equalised photos.
  harm = None
  if featurize is not None and images is not None and config.get('harmonise', True):
    kinds = tuple(config.get('harmonisations', harmonise.KINDS))
    with progress.task('evaluate: harmonised re-test', total=len(kinds) + 1,
                       unit='harmonisations') as task:
      harm = harmonise.retest(config.metric, featurize, np.asarray(images), x, y, folds, perms,
                              num_classes, ridge, nboot, bseed, chunk, config.alpha, chance,
                              targets or harmonise.settings(None, None, images.shape[1]),
                              kinds, progress=task, min_gain=min_gain,
                              min_retained=float(config.get('min_retained',
                                                            harmonise.DEFAULT_MIN_RETAINED)))
  # The battery: same folds, same permutations, a closed-form ridge head.
  sets = {}
  if images is not None:
    sets['image_statistics'] = confounds.image_statistics(images)
    # Coarse appearance of the face itself: blurred chips, conditions equalised when we can.
    coarse = images if harm is None else harm['images_all']
    sets['blurred_photo'] = confounds.blurred_photo(coarse, float(config.get('blur_sigma', 12.0)))
  sets.update(conditions or {})
  with progress.task('evaluate: baseline battery', total=len(sets), unit='feature sets') as task:
    bat = confounds.battery(config.metric, sets, y, folds, perms, num_classes, ridge, nboot,
                            bseed, chunk, progress=task)
  acquisition = {n: b for n, b in bat.items() if n in confounds.ACQUISITION}
  explained = [n for n, b in acquisition.items()
               if confounds.beats_chance(b, chance, config.alpha)]
  incr = None
  if acquisition:
    against = explained or [max(acquisition, key=lambda n: acquisition[n]['cv_score'])]
    incr = confounds.incremental(config.metric, bat, against, oof, y, folds, perms,
                                 num_classes, ridge, chunk, nboot, bseed)
  answer, explained = confounds.decide(predictable, bat, incr, chance, config.alpha, min_gain,
                                       harm)
  facial = None
  if answer == confounds.FACES:
    facial = confounds.aspect(config.metric, bat, oof, y, folds, perms, num_classes, ridge,
                              chunk, chance, config.alpha, min_gain, nboot, bseed)
  for n, b in bat.items():
    out['baselines'][n] = dict({k: v for k, v in b.items() if k != 'oof'},
                               description=confounds.DESCRIPTIONS.get(n, n),
                               beats_chance=confounds.beats_chance(b, chance, config.alpha),
                               kind='acquisition' if n in confounds.ACQUISITION else 'facial',
                               head='ridge')
  if harm is not None:
    out['harmonised'] = {k: v for k, v in harm.items() if k != 'images_all'}
  out.update(answer=answer, explained_by=explained, incremental=incr,
             baseline_head={'kind': 'ridge', 'ridge': ridge, 'p_adjustment': 'holm'})
  if facial is not None:
    out['facial_aspect'] = facial
  out['power'] = power.power_statement(counts, config.alpha,
                                       float(np.percentile(null, 100 * (1 - config.alpha))),
                                       config.metric, float(config.get('power', 0.8)))
  warnings = []
  if answer == confounds.CONDITIONS:
    warnings.append(wording.conditions_warning(out))
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


verdict_text = wording.verdict_text


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
  from gradejax.evaluation import plan as preregister
  from gradejax.nets import extractor
  from gradejax.training import runs
  if config is None:
    config = runs.load_config(workdir)
  if data is None:
    data = input_pipeline.load_dataset(config)
  module, variables = extractor.load_face_resnet()
  if features is None:
    features = input_pipeline.cached_features(config, data, workdir, module, variables,
                                              input_pipeline.weights_id(config))
  conditions, groups, targets = _photo_conditions(config, data)
  v = evaluate_features(config, features[0], data['label'], data['fold'], data['num_classes'],
                        images=data['images'], grade=data['grade'], conditions=conditions,
                        groups=groups, featurize=featurizer(config, module, variables),
                        targets=targets)
  v['labels'] = str(data.get('labelling', 'as prepared'))
  if data.get('selection'):
    v['selection'] = data['selection']
  current = preregister.plan_of(config, data, conditions is not None)
  current['battery'] = [n for n in v['baselines'] if n != 'majority_class']
  v['preregistration'] = preregister.compare(preregister.default_path(config), current)
  entry = {'dataset': ledger.dataset_key(data), 'config_hash': ledger.config_hash(config),
           'workdir': str(pathlib.Path(workdir).absolute()), 'metric': v['metric'],
           'cv_score': v['cv_score'], 'p_value': v['p_value'], 'answer': v['answer'],
           'plan_deviations': len(v['preregistration']['deviations'])}
  v['ledger'] = ledger.record(ledger.default_path(config), entry)
  _count_planned(v, entry, ledger.default_path(config))
  write_verdict(workdir, v)
  logging.info('%s', verdict_text(v))
  return v


def _count_planned(v: dict[str, Any], entry: dict[str, Any], path) -> None:
  """A deviating evaluation also counts the planned analysis it replaced (when that one was
  not itself run and recorded): one more test, p = 1, in the Holm correction."""
  pre = v['preregistration']
  planned = pre.get('planned_config_hash')
  if not pre['deviations'] or not planned:
    return
  latest = {e['config_hash']: float(e['p_value']) for e in ledger.read(path)
            if e.get('dataset') == entry['dataset']}
  if planned in latest:
    return
  names = list(latest) + [planned]
  adjusted = ledger.holm([latest[n] for n in latest] + [1.0])
  v['ledger'].update(analyses=len(names), p_holm=adjusted[names.index(entry['config_hash'])],
                     counts_planned_analysis=True)


def featurizer(config, module, variables,
               batch_size: int = input_pipeline.FEATURE_BATCH):
  """uint8 chips [N, H, W, 3] -> the CNN's view-0 features [N, D] (one batched pass), for the
  harmonised re-test: the training features' function and batch, so one compiled program."""
  fn = input_pipeline.make_feature_fn(config.head_input, module.input_means,
                                      input_pipeline.augment_params(config))
  key = input_pipeline.view_key(config.seed)

  def featurize(images: np.ndarray) -> np.ndarray:
    return np.asarray(batching.map_batches(
        lambda idx: fn(variables['params'], images[idx], np.zeros(len(idx), np.int32), idx, key),
        np.arange(len(images), dtype=np.int32), batch_size), np.float32)

  return featurize


def _photo_conditions(config, data: dict):
  """(baseline feature sets, groups or None, harmonisation targets) from
  ``DATA_DIR/photo_conditions.csv`` and the manifest's chip affines; (None, None, targets
  without them) for a dataset prepared before that table existed."""
  from gradejax.data import manifest, photo_quality
  root = pathlib.Path(config.data_dir).expanduser()
  size = int(data['images'].shape[1])
  footprint = None
  if (root / 'manifest.csv').is_file():
    affine = {e.source_row: e.chip_affine for e in manifest.read(root / 'manifest.csv')}
    # Photo pixels across the chip: the chip side over the affine's scale.
    footprint = np.array([size / np.sqrt(abs(np.linalg.det(np.asarray(affine[int(r)])[:, :2])))
                          if affine.get(int(r)) is not None else np.nan
                          for r in data['source_row']])
  path = root / 'photo_conditions.csv'
  if not path.is_file():
    logging.warning('%s missing (prepared by an older gradejax): the image-quality, background '
                    'and geometry baselines are skipped; re-run prepare to get them.', path)
    return None, None, harmonise.settings(None, footprint, size)
  rows = photo_quality.read_csv(path)
  groups = np.array([rows[int(r)]['group'] for r in data['source_row']], dtype=str)
  quality = {k: np.array([np.nan if rows[int(r)].get(k) is None else rows[int(r)][k]
                          for r in data['source_row']], float)
             for k in ('jpeg_quality', 'format_jpeg') if all(int(r) in rows
                                                             for r in data['source_row'])}
  return (confounds.condition_features(rows, data['source_row']),
          groups if (groups != '').all() and len(np.unique(groups)) > 1 else None,
          harmonise.settings(quality or None, footprint, size))
