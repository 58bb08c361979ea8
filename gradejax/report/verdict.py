"""The verdict, rendered once for every page that shows it: the sentence to quote, the
plain-language ``verdict.txt``, figures (permutation null, out-of-fold ROC with its bootstrap
band, confusion matrix, CNN vs baselines) and the raw ``verdict.json`` folded away.

Reads ``WORKDIR/eval/{verdict.json, verdict.txt, arrays.npz}`` as gradejax.evaluation.evaluate
writes them and draws whatever is there: a key or array that an older (or newer) evaluation does
not write only removes its figure or row.
"""
from __future__ import annotations

import json
import pathlib
from typing import Any, Sequence

import numpy as np

from gradejax import stats
from gradejax.report import charts as svg, document

METRIC_NAMES = {'roc_auc': 'ROC AUC', 'balanced_accuracy': 'balanced accuracy', 'mcc': 'MCC'}


def _num(x: Any) -> float | None:
  return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _ci(x: Any) -> tuple[float, float] | None:
  if isinstance(x, (list, tuple)) and len(x) == 2 and all(_num(a) is not None for a in x):
    return float(x[0]), float(x[1])
  return None


def _score(d: dict) -> float | None:
  """A model's score under whichever key the evaluation used."""
  for k in ('cv_score', 'score'):
    if _num(d.get(k)) is not None:
      return float(d[k])
  return None


def quotable(v: dict[str, Any]) -> str:
  """One sentence a researcher can quote, numbers rounded as in a paper, e.g. 'Grades were
  predictable from the photos above chance: cross-validated ROC AUC 0.92 (95% CI 0.90-0.95;
  chance 0.50), permutation test p < 0.001 (1000 label shuffles); n = 429, 5-fold CV x 1.'"""
  metric = METRIC_NAMES.get(str(v.get('metric')), str(v.get('metric', 'score')))
  if isinstance(v.get('answer'), str) and v['answer'].strip():
    opening = v['answer'].strip().rstrip('.')
    opening = opening[0].upper() + opening[1:]
  elif v.get('predictable') is True:
    opening = 'Grades were predictable from the photos above chance'
  elif v.get('predictable') is False:
    opening = 'Grades could not be told from the photos better than chance'
  else:
    opening = f'Verdict: {v.get("verdict", "unknown")}'
  parts = []
  score, ci, chance = _score(v), _ci(v.get('ci95')), _num(v.get('chance'))
  if score is not None:
    s = f'cross-validated {metric} {score:.2f}'
    extra = ([f'95% CI {ci[0]:.2f}-{ci[1]:.2f}'] if ci else []) + (
        [f'chance {chance:.2f}'] if chance is not None else [])
    parts.append(s + (f' ({"; ".join(extra)})' if extra else ''))
  p = _num(v.get('p_value', v.get('p')))
  if p is not None:
    n = v.get('num_permutations')
    parts.append(f'permutation test {svg.format_p(p)}' +
                 (f' ({int(n)} label shuffles)' if isinstance(n, int) else ''))
  tail = []
  if isinstance(v.get('num_examples'), int):
    tail.append(f'n = {v["num_examples"]}')
  if isinstance(v.get('folds'), int):
    tail.append(f'{v["folds"]}-fold CV' + (f' x {v["repeats"]}' if isinstance(v.get('repeats'),
                                                                            int) else ''))
  # What the three-way answer rests on: the baselines that explain the signal, or what a null
  # answer could have seen.
  explained = [b for b in v.get('explained_by') or [] if b in (v.get('baselines') or {})]
  if explained:
    named = [f'{b.replace("_", " ")} {_num(_score(v["baselines"][b])):.2f}' for b in explained
             if _num(_score(v['baselines'][b])) is not None]
    incr = v.get('incremental') if isinstance(v.get('incremental'), dict) else {}
    if named and str(v.get('answer', '')).startswith('faces'):
      # The photo conditions carry some signal but the CNN adds to them: not "explained by".
      stacked = ''
      if _num(incr.get('with_cnn_score')) is not None and _num(incr.get('baselines_score')) \
          is not None:
        stacked = (f'; stacked with them {float(incr["with_cnn_score"]):.2f} vs '
                   f'{float(incr["baselines_score"]):.2f}' +
                   (f', {svg.format_p(float(incr["p_value"]))}'
                    if _num(incr.get('p_value')) is not None else ''))
      parts.append('beyond photo conditions that also beat chance (' + ', '.join(named) +
                   stacked + ')')
    elif named:
      parts.append('explained by ' + ', '.join(named))
  # The harmonised re-test and the facial aspect (issue 23).
  hm = v.get('harmonised') if isinstance(v.get('harmonised'), dict) else None
  if hm and isinstance(hm.get('reference'), dict) and hm['reference'].get('beats_chance'):
    removed = [str(k) for k in hm.get('removed_by') or []]
    if removed:
      parts.append('removed by equalising ' + ', '.join(removed))
    elif isinstance(hm.get('all'), dict) and _num(hm['all'].get('cv_score')) is not None:
      r = hm['all']
      ci_all = _ci(r.get('ci95'))
      parts.append(f'{float(r["cv_score"]):.2f} on harmonised photos' +
                   (f' (95% CI {ci_all[0]:.2f}-{ci_all[1]:.2f})' if ci_all else ''))
  fa = v.get('facial_aspect') if isinstance(v.get('facial_aspect'), dict) else None
  if fa and isinstance(fa.get('aspect'), str):
    parts.append(f'carried by {fa["aspect"]}')
  pw = v.get('power') if isinstance(v.get('power'), dict) else None
  if pw and v.get('predictable') is False and _num(pw.get('min_detectable_auc')) is not None:
    parts.append(f'smallest ROC AUC detectable with {float(pw.get("power", 0.8)):.0%} power '
                 f'{float(pw["min_detectable_auc"]):.2f}')
  text = opening + (': ' + ', '.join(parts) if parts else '')
  return text + ('; ' + ', '.join(tail) if tail else '') + '.'


def read(eval_dir: str | pathlib.Path) -> tuple[dict | None, str, dict[str, np.ndarray]]:
  """(verdict.json as a dict or None, verdict.txt or '', arrays.npz as a dict or {})."""
  eval_dir = pathlib.Path(eval_dir)
  v = (json.loads((eval_dir / 'verdict.json').read_text(encoding='utf-8'))
       if (eval_dir / 'verdict.json').is_file() else None)
  txt = ((eval_dir / 'verdict.txt').read_text(encoding='utf-8')
         if (eval_dir / 'verdict.txt').is_file() else '')
  arrays = {}
  if (eval_dir / 'arrays.npz').is_file():
    with np.load(eval_dir / 'arrays.npz') as z:
      arrays = {k: z[k] for k in z.files}
  return v, txt, arrays


def baseline_rows(v: dict) -> list[tuple[str, float | None, tuple[float, float] | None,
                                         float | None]]:
  """(name, score, ci95 or None, p or None): the CNN first, then each baseline."""
  rows = [('CNN (face descriptor head)', _score(v), _ci(v.get('ci95')),
           _num(v.get('p_value', v.get('p'))))]
  for name, b in (v.get('baselines') or {}).items():
    if isinstance(b, dict):
      rows.append((str(name).replace('_', ' '), _score(b), _ci(b.get('ci95')),
                   _num(b.get('p_value', b.get('p')))))
    elif _num(b) is not None:
      rows.append((str(name).replace('_', ' '), float(b), None, None))
  return rows


def charts(v: dict, arrays: dict[str, np.ndarray], class_names: Sequence[str] = ()
           ) -> list[document.Chart]:
  """The verdict's figures from whatever is present."""
  out = []
  metric = METRIC_NAMES.get(str(v.get('metric')), str(v.get('metric', 'score')))
  score, p, chance = _score(v), _num(v.get('p_value', v.get('p'))), _num(v.get('chance'))
  if 'null' in arrays and len(arrays['null']) and score is not None and p is not None:
    out.append(document.Chart(
        svg.svg_null_histogram(arrays['null'], score, p, metric, chance),
        f'The CV {metric} of models trained on shuffled labels (blue) and of the real labels '
        f'(red); p counts the shuffles scoring at least as high.'))
  oof, label = arrays.get('oof'), arrays.get('label')
  if oof is not None and label is not None and oof.ndim == 2 and oof.shape[1] == 2 and \
      len(np.unique(label)) == 2:
    fpr, tpr = stats.roc_curve(label, oof[:, 1])
    band = stats.roc_band(label, oof[:, 1], n=200, seed=0)
    auc = float(np.trapezoid(tpr, fpr))
    ci = _ci(v.get('ci95')) if v.get('metric') == 'roc_auc' else None
    out.append(document.Chart(
        svg.svg_roc(fpr, tpr, auc, band, ci),
        'Out-of-fold predictions of CV repeat 0; shaded: pointwise 95% bootstrap band '
        '(200 stratified resamples).'))
  cm = (v.get('repeat0') or {}).get('confusion_matrix')
  if isinstance(cm, list) and cm and all(isinstance(r, list) for r in cm):
    out.append(document.Chart(svg.svg_confusion(np.asarray(cm, float), class_names),
                              'Rows: true class; columns: predicted; % of each true class.'))
  rows = [r for r in baseline_rows(v) if r[1] is not None]
  if len(rows) > 1:
    out.append(document.Chart(
        svg.svg_bars([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                         chance, highlight=0, metric=metric),
        'Whiskers: 95% bootstrap CIs where the evaluation computed them.'))
  return out


def _table(v: dict) -> document.Table:
  rows = []
  for name, s, ci, p in baseline_rows(v):
    rows.append((name, '' if s is None else f'{s:.2f}',
                 '' if ci is None else f'{ci[0]:.2f}-{ci[1]:.2f}',
                 '' if p is None else svg.format_p(p)))
  return document.Table(('model', METRIC_NAMES.get(str(v.get('metric')), 'score'), '95% CI',
                         'permutation p'), rows)


def section(workdir: str | pathlib.Path, title: str = 'Verdict') -> document.Section:
  """The report section for ``WORKDIR/eval``: lead (sentence + verdict.txt), figures, a table
  of the CNN and baselines, the raw JSON folded."""
  workdir = pathlib.Path(workdir)
  v, txt, arrays = read(workdir / 'eval')
  if v is None:
    return document.Section(title, [f'No eval/verdict.json yet in {workdir.name} (run the '
                                    'evaluation first: python -m gradejax.evaluate --workdir '
                                    'DIR); the rest of this page explains the model as '
                                    'trained.'])
  class_names: Sequence[str] = ()
  cfg = workdir / 'config.json'
  if cfg.is_file():
    class_names = json.loads(cfg.read_text(encoding='utf-8')).get('class_names') or ()
  lead = [quotable(v)] + [line for line in txt.splitlines() if line.strip()]
  if txt == '' and isinstance(v.get('warning'), str):
    lead.append('WARNING: ' + v['warning'])
  return document.Section(
      title, lead=lead, charts=charts(v, arrays, class_names), tables=[_table(v)],
      details=[('Raw eval/verdict.json', json.dumps(v, indent=2))])
