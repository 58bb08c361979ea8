"""The verdict's words: ``verdict.txt`` from the verdict dict of :func:`evaluate.evaluate_features`.

Reads only the dict (and works on verdicts written before a key existed), so the report pages
(gradejax.report.verdict) and the command print the same sentences.
"""
from __future__ import annotations

from typing import Any

from gradejax.data import selection
from gradejax.evaluation import confounds, harmonise

CEILING = {'roc_auc': 0.99, 'balanced_accuracy': 0.99, 'mcc': 0.98}  # "reaches the ceiling"


def _ci(c) -> str:
  return f'CI {c[0]:.3f}-{c[1]:.3f}'


def _baseline_line(name: str, b: dict[str, Any]) -> str:
  if name == 'majority_class':
    return (f'  majority class: {b["cv_score"]:.3f} (plain accuracy {b["accuracy"]:.3f})')
  mark = ' <- beats chance' if b.get('beats_chance') else ''
  kind = f' [{b["kind"]}]' if 'kind' in b else ''
  return (f'  {b.get("description", name)}{kind}: {b["cv_score"]:.3f} ({_ci(b["ci95"])}; '
          f'p = {b["p_value"]:.4f}, Holm {b["p_holm"]:.4f}){mark}')


def _gain(incr: dict[str, Any]) -> str:
  c = incr.get('gain_ci95', [float('nan')] * 2)
  return (f'stacked {incr["with_cnn_score"]:.3f} vs {incr["baselines_score"]:.3f} without the '
          f'CNN, gain {incr["gain"]:+.3f} ({_ci(c)}; p = {incr["p_value"]:.4f})')


def _harm_line(name: str, r: dict[str, Any], effect: bool = True) -> str:
  """One harmonisation's line; ``effect``: the original photos beat chance, so a share of
  their effect kept means something (at chance it is a ratio of noise: -4429% was printed)."""
  mark = 'beats chance' if r['beats_chance'] else 'at chance'
  kept = f'; {r.get("retained", float("nan")):.0%} of the effect kept' if effect else ''
  return (f'  {r.get("description", harmonise.DESCRIPTIONS.get(name, name))}: '
          f'{r["cv_score"]:.3f} ({_ci(r["ci95"])}; p = {r["p_value"]:.4f}{kept}) {mark}')


def conditions_warning(v: dict[str, Any]) -> str:
  """The one-sentence warning of a 'photo conditions' answer."""
  hm = v.get('harmonised')
  if hm and hm['reference']['beats_chance'] and (hm['removed_by'] or not hm['survives']):
    names = [harmonise.DESCRIPTIONS[k] for k in hm['removed_by']] or [
        harmonise.DESCRIPTIONS['all']]
    return ('Photo conditions, not faces, carry the signal: equalising them removes it ('
            + '; '.join(names) + ').')
  named = ', '.join(f'{v["baselines"][n]["description"]} ({v["baselines"][n]["cv_score"]:.3f})'
                    for n in v.get('explained_by', []))
  return (f'Photo conditions, not faces, carry the signal: {named} beat chance'
          + (' and the CNN adds too little to them.' if v['predictable'] else '.'))


def verdict_text(v: dict[str, Any]) -> str:
  answer = v.get('answer', v['verdict'])
  lines = [f'Verdict: {answer.upper()}']
  named = [v['baselines'][n] for n in v.get('explained_by', [])]
  names = ', '.join(f'{b["description"]} ({b["cv_score"]:.3f}, {_ci(b["ci95"])})'
                    for b in named)
  incr = v.get('incremental')
  hm = v.get('harmonised')
  usable = bool(hm and hm['reference']['beats_chance'])
  min_gain = v.get('min_gain', confounds.DEFAULT_MIN_GAIN)
  if answer == confounds.CONDITIONS:
    if usable and hm['removed_by']:
      for k in hm['removed_by']:
        r = hm[k]
        most = ('' if not r['beats_chance'] else
                f' (all but {r["retained"]:.0%} of it, under the {hm.get("min_retained", 0.5):.0%}'
                f' a face signal must keep)')
        lines.append(f'Equalising the photos ({harmonise.DESCRIPTIONS[k]}) removes the signal'
                     f'{most}: the CNN\'s features score {r["cv_score"]:.3f} ({_ci(r["ci95"])}; '
                     f'p = {r["p_value"]:.4f}) against {hm["reference"]["cv_score"]:.3f} on the '
                     f'original photos.')
    elif usable and not hm['survives']:
      r = hm['all']
      lines.append(f'With all acquisition conditions equalised together the signal falls to '
                   + ('chance' if not r['beats_chance'] else
                      f'{r["retained"]:.0%} of its effect (a face signal keeps at least '
                      f'{hm.get("min_retained", 0.5):.0%})')
                   + f': {r["cv_score"]:.3f} ({_ci(r["ci95"])}; p = {r["p_value"]:.4f}).')
    if names:
      lines.append(f'The photos tell the grades apart through photo conditions: {names}.')
    if v['predictable'] and incr and not (usable and (hm['removed_by'] or not hm['survives'])):
      lines.append(f'The CNN adds too little beyond them (at least {min_gain:.3f} with a CI '
                   f'above 0 is needed): {_gain(incr)}.')
    elif not v['predictable']:
      lines.append('The CNN on the faces is not distinguishable from chance, but that does not '
                   'mean the photos carry nothing.')
  elif answer == confounds.FACES:
    fa = v.get('facial_aspect')
    if fa:
      lines.append(f'The signal is in the face: {fa["aspect"]} carries it (by incremental '
                   f'validity among the facial baselines'
                   + (f': {", ".join(v["baselines"][n]["description"] for n in fa["beats"])} '
                      f'beat chance' if fa['beats'] else ': none of them beats chance') + ').')
    if usable:
      r = hm['all']
      lines.append(f'On photos with every acquisition condition equalised the CNN still beats '
                   f'chance: {r["cv_score"]:.3f} ({_ci(r["ci95"])}; p = {r["p_value"]:.4f}), '
                   f'{r["cv_score"] - v["chance"]:+.3f} over chance, {r["retained"]:.0%} of the '
                   f'effect on the original photos ({hm["reference"]["cv_score"]:.3f}).')
    if named and incr:
      if confounds.adds(incr, v['alpha'], min_gain):
        lines.append(f'Photo conditions also carry some signal ({names}), but the CNN adds to '
                     f'them: {_gain(incr)}.')
      else:
        lines.append(f'Photo conditions also carry some signal ({names}) and the CNN adds less '
                     f'than {min_gain:.3f} to them ({_gain(incr)}), but equalising those '
                     f'conditions did not remove the signal.')
  top = [(n, b) for n, b in v['baselines'].items()
         if n != 'majority_class' and b.get('beats_chance') and b['cv_score'] > v['cv_score']]
  for n, b in top:
    lines.append(f'A baseline beats the CNN itself: {b["description"]} {b["cv_score"]:.3f} vs '
                 f'the CNN {v["cv_score"]:.3f}.')
  if incr and incr['baselines_score'] >= CEILING.get(v['metric'], 0.99):
    lines.append(f'The photo-condition baselines alone reach the metric\'s ceiling '
                 f'({incr["baselines_score"]:.3f}): on these photos faces cannot be separated '
                 f'from photo conditions by regression'
                 + (', only by the harmonised re-test.' if usable else '.'))
  lines += [
      f'CNN: {v["metric"]} (cross-validated, {v["folds"]}-fold x {v["repeats"]}) '
      f'{v["cv_score"]:.3f} (95% bootstrap CI {v["ci95"][0]:.3f}-{v["ci95"][1]:.3f}; chance '
      f'{v["chance"]:.3f}); {v["verdict"]}.',
      f'Permutation test: p = {v["p_value"]:.4f} ({v["num_permutations"]} label shuffles; '
      f'alpha {v["alpha"]}); shuffled labels score {v["null_mean"]:.3f} on average.',
  ]
  if hm:
    lines.append(f'Harmonised re-test (the CNN\'s features recomputed on equalised photos, ridge '
                 f'head, same folds and shuffles; JPEG quality {hm["settings"]["jpeg_quality"]}, '
                 f'side {hm["settings"]["side"] or "as is"}):')
    lines.append(_harm_line('reference', dict(hm['reference'], description='original photos',
                                              retained=1.0), usable))
    lines += [_harm_line(k, hm[k], usable) for k in hm['kinds'] + ['all']]
    if not usable:
      lines.append('  (the ridge head on the original photos does not beat chance, so the '
                   're-test cannot speak)')
  lines.append('Baselines (same folds and label shuffles; ridge head, p Holm-adjusted over '
               'them; acquisition conditions can explain the signal, facial aspects are part of '
               'the face):')
  lines += [_baseline_line(n, b) for n, b in v['baselines'].items()]
  if incr and answer != confounds.CONDITIONS and not named:
    lines.append(f'Incremental validity: the CNN with {", ".join(incr["against"])}: '
                 f'{_gain(incr)}.')
  lines.append(f'Examples: {v["num_examples"]} (per class {v["class_counts"]}).')
  biased = selection.sentence(v.get('selection'))
  if biased:
    lines.append(f'Selection: {biased}.')
  if 'labels' in v:
    lines.append(f'Labels: {v["labels"]}.')
  if 'preregistration' in v:
    lines.append(v['preregistration']['text'])
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
