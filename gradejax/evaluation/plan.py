r"""The analysis plan, written and hashed before the first evaluation (the library half of
`python -m gradejax.preregister`, :mod:`gradejax.preregister`).

Writes ``FILE`` (default :func:`default_path`: ``plan-<dataset folder>.json`` beside the ledger)
with what the evaluation will do, fixed before any result is seen (:data:`FIELDS`): the config
hash and the analysis settings, the dataset fingerprint (ledger.dataset_key: ids, grades,
chips), the metric, alpha, min_gain, min_retained, the battery of baselines, the
harmonisations, the labelling (prepare's pivot), plus how many evaluations the ledger already
holds for this dataset. ``hash`` is the sha256 of every field of :data:`FIELDS`.

Every evaluation builds the same plan from its own config and data and compares
(:func:`compare`): the verdict says "pre-registered, no deviation" or lists each deviation
(a field that differs, a plan edited after it was written, a plan written after evaluations
had been run); an evaluation that deviates counts the planned analysis as one more test in the
ledger's correction (gradejax.evaluation.evaluate).
"""
from __future__ import annotations

import hashlib
import json
import pathlib
import time
from typing import Any, Sequence

FIELDS = ('config_hash', 'dataset', 'metric', 'alpha', 'min_gain', 'min_retained',
          'num_permutations', 'cv_folds', 'cv_repeats', 'battery', 'harmonisations',
          'labelling')
VERSION = 2  # 2: min_retained joined the plan


def battery_names(config, has_conditions: bool) -> list[str]:
  """The baselines the evaluation will run (the side-table ones when photo_conditions.csv
  exists)."""
  from gradejax.evaluation import confounds
  names = ['image_statistics', 'blurred_photo']
  if has_conditions:
    names += ['image_quality', 'background', 'head_pose', 'face_geometry']
  return [n for n in names if n in confounds.DESCRIPTIONS]


def harmonisation_names(config) -> list[str]:
  from gradejax.evaluation import harmonise
  if not config.get('harmonise', True):
    return []
  return list(config.get('harmonisations', harmonise.KINDS)) + ['all']


def plan_of(config, data: dict, has_conditions: bool) -> dict[str, Any]:
  """The plan's :data:`FIELDS` for ``config`` and the loaded ``data``
  (input_pipeline.load_dataset: needs ``id``, ``grade``, ``images``, ``labelling``)."""
  from gradejax.evaluation import confounds, harmonise, ledger
  return {
      'config_hash': ledger.config_hash(config), 'dataset': ledger.dataset_key(data),
      'metric': str(config.metric), 'alpha': float(config.alpha),
      'min_gain': float(config.get('min_gain', confounds.DEFAULT_MIN_GAIN)),
      'min_retained': float(config.get('min_retained', harmonise.DEFAULT_MIN_RETAINED)),
      'num_permutations': int(config.num_permutations), 'cv_folds': int(config.cv_folds),
      'cv_repeats': int(config.cv_repeats), 'battery': battery_names(config, has_conditions),
      'harmonisations': harmonisation_names(config),
      'labelling': str(data.get('labelling', 'as prepared')),
  }


def plan_hash(plan: dict[str, Any]) -> str:
  """sha256 (hex) of the plan's :data:`FIELDS` (canonical JSON, sorted keys)."""
  body = {k: plan.get(k) for k in FIELDS}
  return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def default_path(config) -> pathlib.Path:
  """``plan-<dataset folder name>.json`` in the ledger's folder (config.plan overrides)."""
  from gradejax.evaluation import ledger
  if str(config.get('plan', '') or ''):
    return pathlib.Path(config.plan).expanduser()
  name = pathlib.Path(config.data_dir).expanduser().absolute().name
  return ledger.default_path(config).parent / f'plan-{name}.json'


def write(path: str | pathlib.Path, plan: dict[str, Any], evaluations_before: int = 0
          ) -> dict[str, Any]:
  """Writes the plan with its hash, the time and the count of earlier evaluations."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  out = dict({k: plan[k] for k in FIELDS}, version=VERSION, hash=plan_hash(plan),
             written=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
             evaluations_before=int(evaluations_before))
  tmp = path.with_suffix('.tmp')
  tmp.write_text(json.dumps(out, indent=2, sort_keys=True) + '\n', encoding='utf-8')
  tmp.replace(path)
  return out


def compare(path: str | pathlib.Path, current: dict[str, Any]) -> dict[str, Any]:
  """This evaluation against the plan at ``path``: {'status': 'pre-registered' |
  'deviations' | 'not pre-registered', 'deviations': [str], 'text', 'path', 'hash'}."""
  path = pathlib.Path(path)
  if not path.is_file():
    return {'status': 'not pre-registered', 'deviations': [], 'path': str(path), 'hash': None,
            'text': f'Not pre-registered (no plan at {path}; write one with '
                    f'`python -m gradejax.preregister` before the first evaluation).'}
  plan = json.loads(path.read_text(encoding='utf-8'))
  dev = []
  if plan.get('hash') != plan_hash(plan):
    dev.append('the plan file was changed after it was written (its hash does not match)')
  if int(plan.get('evaluations_before', 0)):
    dev.append(f'the plan was written after {plan["evaluations_before"]} evaluation(s) of '
               f'this dataset')
  for k in FIELDS:
    if plan.get(k) != current.get(k):
      dev.append(f'{k}: planned {plan.get(k)!r}, used {current.get(k)!r}')
  status = 'deviations' if dev else 'pre-registered'
  text = (f'Pre-registered ({path.name}, hash {plan.get("hash", "")[:12]}), no deviation.'
          if not dev else
          f'Pre-registered ({path.name}, hash {str(plan.get("hash", ""))[:12]}) with '
          f'{len(dev)} deviation(s), counted in the ledger\'s correction: ' + '; '.join(dev)
          + '.')
  return {'status': status, 'deviations': dev, 'path': str(path), 'hash': plan.get('hash'),
          'planned_config_hash': plan.get('config_hash'), 'text': text}


def preregister(config, path: str | pathlib.Path | None = None) -> tuple[pathlib.Path, dict]:
  """Loads the data as the evaluation will, writes the plan; returns (path, plan)."""
  from gradejax.evaluation import ledger
  from gradejax.training import input_pipeline
  data = input_pipeline.load_dataset(config)
  has = (pathlib.Path(config.data_dir).expanduser() / 'photo_conditions.csv').is_file()
  plan = plan_of(config, data, has)
  before = sum(e.get('dataset') == plan['dataset']
               for e in ledger.read(ledger.default_path(config)))
  path = pathlib.Path(path) if path else default_path(config)
  return path, write(path, plan, before)
