"""Whether the skipped rows are a random part of the cohort, by grade (pure).

prepare skips a row it cannot use (no face found, a photo too small, a bad grade, ...; each with
its reason in manifest.csv). If what makes a photo unusable goes with the grade -- a detector
that fails on some faces, a photographer's session, one cohort's scans -- the used rows are no
longer a sample of the cohort, and an answer about them is not an answer about it. This
compares the grades of the skipped rows that have one with the used rows' (two-sided
Mann-Whitney U) and gives each class's skip rate, so prepare's summary and the verdict can say
so when they differ.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats

from gradejax.data import labels as labels_lib
from gradejax.data.manifest import Entry

ALPHA = 0.05
# Fewer skipped rows with a grade: no test, and no median either (a median of two or three
# grades is nearly a student's own grade); the summary still counts them.
MIN_SKIPPED = 5


def skip_selection(entries: Sequence[Entry], labelling: labels_lib.Labelling,
                   grade_range: tuple[float, float] = (1.0, 6.0), alpha: float = ALPHA
                   ) -> dict:
  """Skipped against used rows, by grade: a JSON-ready dict with ``skipped_with_grade`` (the
  skipped rows whose grade lies in ``grade_range``: the others have no grade to compare),
  and, with at least :data:`MIN_SKIPPED` of them and a used row (else None / False / {}):
  ``used_median``, ``skipped_median``, ``p`` (two-sided Mann-Whitney U), ``differs``
  (p < ``alpha``) and ``skip_rate_by_class`` (class name -> skipped / (used + skipped) among
  rows with a grade, the skipped rows classed by ``labelling``'s thresholds)."""
  lo, hi = grade_range
  graded = lambda e: e.grade is not None and np.isfinite(e.grade) and lo <= e.grade <= hi
  used = np.array([e.grade for e in entries if e.status == 'used' and graded(e)], np.float64)
  skipped = np.array([e.grade for e in entries if e.status != 'used' and graded(e)],
                     np.float64)
  out = {'skipped_with_grade': int(len(skipped)), 'used_median': None,
         'skipped_median': None, 'p': None, 'differs': False, 'skip_rate_by_class': {}}
  if len(used) == 0 or len(skipped) < MIN_SKIPPED:
    return out
  k = len(labelling.class_names)
  n_used = np.bincount(labels_lib.assign(used, labelling), minlength=k)
  n_skip = np.bincount(labels_lib.assign(skipped, labelling), minlength=k)
  out['skip_rate_by_class'] = {
      name: float(n_skip[j] / (n_used[j] + n_skip[j])) if n_used[j] + n_skip[j] else 0.0
      for j, name in enumerate(labelling.class_names)}
  p = float(stats.mannwhitneyu(skipped, used, alternative='two-sided').pvalue)
  out.update(used_median=float(np.median(used)), skipped_median=float(np.median(skipped)),
             p=p, differs=bool(p < alpha))
  return out


def sentence(sel: dict | None, rows_read: int | None = None) -> str:
  """One line for the summary and the verdict when the skipped rows' grades differ (empty
  otherwise); ``rows_read`` defaults to the dict's own (the verdict's copy holds it)."""
  if not sel or not sel.get('differs'):
    return ''
  p = sel['p']
  p_text = 'p < 0.001' if p < 0.001 else f'p = {p:.3f}'
  rows_read = rows_read or sel.get('rows_read')  # the verdict's copy carries it
  of = f' (of {rows_read} rows read)' if rows_read else ''
  rates = ', '.join(f'{n} {r:.0%}' for n, r in sel['skip_rate_by_class'].items())
  return (f"the {sel['skipped_with_grade']} skipped rows with a grade{of} have other grades "
          f"than the used rows (median {sel['skipped_median']:.2f} vs "
          f"{sel['used_median']:.2f}, Mann-Whitney {p_text}; skipped per class: {rates}): "
          f'what made those photos unusable goes with the grade, so the answer holds for the '
          f'rows used, not for the whole cohort (manifest.csv gives each skipped row\'s reason)')
