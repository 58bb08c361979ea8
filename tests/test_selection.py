"""Are the skipped rows a random part of the cohort, by grade (gradejax.data.selection)?"""
import numpy as np
import pytest
import scipy.stats

from gradejax.data import labels, selection
from gradejax.data.manifest import Entry
from gradejax.evaluation import wording


def _entries(used, skipped, extra=()):
  rows = [(g, 'used') for g in used] + [(g, 'skipped') for g in skipped] + list(extra)
  return [Entry(i + 2, f'{i:06d}', g, s, '' if s == 'used' else 'no_face: no face')
          for i, (g, s) in enumerate(rows)]


def test_skipped_high_grades_are_flagged_against_scipys_test():
  rng = np.random.default_rng(0)
  used = np.round(rng.normal(4.6, 0.4, 120).clip(1, 6), 2)
  skipped = np.round(rng.normal(5.3, 0.3, 30).clip(1, 6), 2)
  # rows with no grade to compare are not counted (a missing or out-of-range grade)
  e = _entries(used, skipped, extra=[(None, 'skipped'), (7.5, 'skipped'), (float('nan'),
                                                                            'skipped')])
  lab = labels.make_labelling(used, pivot=4.75)
  sel = selection.skip_selection(e, lab)
  assert sel['skipped_with_grade'] == 30
  assert sel['p'] == pytest.approx(
      scipy.stats.mannwhitneyu(skipped, used, alternative='two-sided').pvalue, rel=1e-12)
  assert sel['differs'] and sel['p'] < 1e-6
  assert sel['skipped_median'] == pytest.approx(np.median(skipped))
  assert sel['used_median'] == pytest.approx(np.median(used))
  nb, na = np.sum(used < 4.75), np.sum(used >= 4.75)
  sb, sa = np.sum(skipped < 4.75), np.sum(skipped >= 4.75)
  assert sel['skip_rate_by_class'] == {'below_4.75': pytest.approx(sb / (nb + sb)),
                                       'at_or_above_4.75': pytest.approx(sa / (na + sa))}
  said = selection.sentence(sel, 153)
  assert said.startswith('the 30 skipped rows with a grade (of 153 rows read) have other '
                         'grades than the used rows (median')
  assert 'Mann-Whitney p < 0.001' in said and 'not for the whole cohort' in said
  # The verdict says it next to its counts.
  v = {'selection': dict(sel, rows_read=153)}
  line = [l for l in _verdict_lines(v) if l.startswith('Selection: ')]
  assert line == [f'Selection: {said}.']


def test_skipped_at_random_is_not_flagged_and_few_are_not_tested():
  rng = np.random.default_rng(1)
  g = np.round(rng.normal(4.7, 0.5, 300).clip(1, 6), 2)
  skip = np.zeros(len(g), bool)
  skip[::6] = True  # every sixth row, whatever its grade
  e = _entries(g[~skip], g[skip])
  sel = selection.skip_selection(e, labels.make_labelling(g[~skip], pivot='median'))
  assert sel['p'] > 0.05 and not sel['differs'] and selection.sentence(sel) == ''
  few = selection.skip_selection(_entries(g[:50], [6.0, 6.0, 6.0, 6.0]),
                                 labels.make_labelling(g[:50], pivot=4.0))
  assert few['skipped_with_grade'] == 4 and few['p'] is None and few['skipped_median'] is None
  assert few['skip_rate_by_class'] == {} and not few['differs']
  assert not any(l.startswith('Selection') for l in _verdict_lines({'selection': few}))


def _verdict_lines(extra: dict) -> list[str]:
  """verdict_text's lines for a minimal chance-level verdict plus ``extra``."""
  v = {'answer': 'not distinguishable from chance', 'predictable': False, 'metric': 'roc_auc',
       'folds': 5, 'repeats': 1, 'cv_score': 0.5, 'ci95': [0.45, 0.55], 'chance': 0.5,
       'verdict': 'not distinguishable from chance', 'p_value': 0.5, 'num_permutations': 100,
       'alpha': 0.05, 'null_mean': 0.5, 'baselines': {}, 'num_examples': 10,
       'class_counts': [5, 5], **extra}
  return wording.verdict_text(v).splitlines()
