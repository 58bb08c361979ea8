"""The ledger of analyses: every evaluation of a dataset appends one line, so the verdict can
say how many analyses were run on the same students and correct its p-value for them (Holm).

``WORKSPACE/ledger.jsonl`` (``config.ledger``; by default two folders above the dataset,
i.e. ``workspace/ledger.jsonl`` for ``workspace/data/<dataset>``), one JSON object a line:
time, dataset key, config hash, workdir, metric, score, p-value, answer. The dataset key
hashes the ids, grades and chips (not the labelling: another pivot on the same students is
another analysis of the same data); the config hash covers every setting that changes the
analysis. Re-running an identical analysis (same dataset key, same config hash) counts once,
however often it runs (its latest p-value is used), and the summary says so: ``runs`` of this
analysis, ``analyses`` distinct ones, and ``message``, one sentence for the log.
"""
from __future__ import annotations

import hashlib
import json
import pathlib
import time
from typing import Any

import numpy as np

# Settings that do not change the analysis (paths, bookkeeping, output), and the fields train
# derives from the data and the extractor when it saves config.json.
_NOT_ANALYSIS = ('data_dir', 'save_every', 'log_every', 'stop_after_steps', 'log_images',
                 'evaluate', 'permutation_chunk', 'ledger', 'num_classes', 'class_names',
                 'feature_dim', 'input_means', 'data_manifest_sha256')


def dataset_key(data: dict) -> str:
  h = hashlib.sha256()
  h.update(json.dumps([str(i) for i in data['id']]).encode())
  h.update(np.asarray(data['grade'], np.float32).tobytes())
  h.update(np.ascontiguousarray(data['images']).tobytes())
  return h.hexdigest()[:16]


def config_hash(config) -> str:
  d = {k: v for k, v in config.to_dict().items() if k not in _NOT_ANALYSIS}
  return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def default_path(config) -> pathlib.Path:
  path = str(config.get('ledger', '') or '')
  if path:
    return pathlib.Path(path).expanduser()
  return pathlib.Path(config.data_dir).expanduser().absolute().parent.parent / 'ledger.jsonl'


def holm(p: list[float]) -> list[float]:
  """Holm-Bonferroni adjusted p-values (same order as ``p``)."""
  order = np.argsort(p, kind='stable')
  m = len(p)
  out, running = np.zeros(m), 0.0
  for rank, i in enumerate(order):
    running = max(running, min(1.0, (m - rank) * p[i]))
    out[i] = running
  return out.tolist()


def read(path: str | pathlib.Path) -> list[dict[str, Any]]:
  path = pathlib.Path(path)
  if not path.is_file():
    return []
  out = []
  for line in path.read_text(encoding='utf-8').splitlines():
    try:
      out.append(json.loads(line))
    except json.JSONDecodeError:
      continue  # A line cut by a crash: skip it rather than lose the ledger.
  return out


def record(path: str | pathlib.Path, entry: dict[str, Any]) -> dict[str, Any]:
  """Appends ``entry`` (needs 'dataset', 'config_hash', 'p_value') and returns the summary:
  analyses on this dataset (distinct configs), this run's Holm-adjusted p among them."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  entry = dict(entry, time=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
  with open(path, 'a', encoding='utf-8') as f:
    f.write(json.dumps(entry, sort_keys=True) + '\n')
  latest: dict[str, float] = {}
  runs = 0
  for e in read(path):
    if e.get('dataset') == entry['dataset']:
      latest[e['config_hash']] = float(e['p_value'])
      runs += e['config_hash'] == entry['config_hash']
  names = list(latest)
  adjusted = holm([latest[n] for n in names])
  message = (f'Ledger {path}: {len(names)} distinct '
             f'{"analysis" if len(names) == 1 else "analyses"} of this dataset; this one '
             f'(config hash {entry["config_hash"]}) ' +
             (f'was run {runs} times and counts once.' if runs > 1 else 'is new.'))
  return {'path': str(path), 'analyses': len(names),
          'p_holm': adjusted[names.index(entry['config_hash'])], 'runs': runs,
          'message': message, 'dataset': entry['dataset'], 'config_hash': entry['config_hash']}
