"""The attribution report's "What the network relies on" section: renders a battery
:class:`~gradejax.attribution.battery.result.Relies` (computes nothing): the sentence to quote,
one table of strategies per predicted class, each strategy's mean map over the mean chip, and
the concept tests."""
from __future__ import annotations

import pathlib
from typing import Callable

from gradejax.attribution import relies as relies_lib
from gradejax.attribution.battery import result as R
from gradejax.report import charts, document
from gradejax.report import panels as figures

TITLE = 'What the network relies on'


def _ci(c) -> str:
  return f'{c[0]:.2f} [{c[1]:.2f}, {c[2]:.2f}]'


def section(rel: R.Relies | None, out_dir: pathlib.Path,
            save_png: Callable = figures.save_png) -> document.Section:
  """The section; the mean-map panels are also written to ``out_dir/relies/*.png``."""
  if rel is None:
    return document.Section(TITLE, ['Not measured: no map of the clustered method here (add '
                                    'it to --methods or --localisation_methods).'])
  paras = [
      f'Strategies (SpRAy, Lapuschkin et al. 2019): the {rel.method} maps of {rel.where} are '
      f'clustered per predicted class (spectral clustering of the maps\' shapes, number of '
      f'clusters by the eigengap). A strategy is used, not merely drawn, when removing its '
      f'region (the top of its mean map) drops the predicted class\'s logit more than removing '
      f'a random square of the same area (bootstrap CI over the members checked). The region '
      f'is tried at a few areas, from a small part of the face to a face region, and the table '
      f'reports the most concentrated one that is used (the largest excess per unit area; its '
      f'share of the chip follows its name), with CIs at 95% over all the areas tried '
      f'(Bonferroni), so a small cue is not reported as half a face and a broad one is not '
      f'missed by a region too small to remove it. '
      f'About the labels: the same excess for the contrast toward each member\'s true class '
      f'(its logit minus the other classes\' mean): a region the network reads is evidence '
      f'about the labels only when removing it moves the outputs away from the true classes '
      f'more than a random region does ("yes"); a network at chance reads regions too.'
      + (' Purity: the share of its members carrying the planted cue (the demo\'s truth); '
         'peak in cue: the share of its cue-bearing members whose cue region holds the mean '
         'map\'s peak (the pointing game of the strategy\'s one map).' if rel.truth else '')]
  head = ('strategy', 'images', 'share of class', 'class mix (true labels)', 'region',
          'drop when removed', 'random region drop', 'excess [95% CI]', 'used',
          'about the labels [95% CI]', 'checked') + (
              ('purity', 'peak in cue') if rel.truth else ())
  tables, panels = [], []
  for cls in dict.fromkeys(s.predicted for s in rel.strategies):
    rows = [s for s in rel.strategies if s.predicted == cls]
    table = []
    for j, s in enumerate(rows):
      mix = ', '.join(f'{k} {v:.0%}' for k, v in s.class_mix.items())
      where = s.where if s.area is None else f'{s.where}; {relies_lib.share_of_chip(s.area)}'
      table.append((f'#{j + 1}', s.size, f'{s.share:.2f}', mix, where, _ci(s.drop),
                    _ci(s.random_drop), _ci(s.excess), 'yes' if s.beats_random else 'no',
                    _about_labels(s), s.checked) + ((f'{s.purity:.2f}', _share(s.peak_in_cue))
                                  if rel.truth else ()))
      panel = figures.heat_panel(rel.mean_chip, s.mean_map, False, f'{cls} #{j + 1}')
      save_png(panel, out_dir / 'relies' / f'{_slug(cls)}_{j + 1}.png')
      panels.append(panel)
    tables.append(document.Table(head, table, caption=f'predicted {cls!r}'))
  figs = [document.Figure(figures.grid([panels]), 'Each strategy\'s mean map over the mean '
                          'chip of the clustered images (dark = 0).')] if panels else []
  if rel.concepts:
    what = ('logit contrast (its logit minus the other classes\' mean: what decides the '
            'prediction)' if rel.tcav_score == 'contrast' else 'logit')
    paras.append(f'Concept tests (TCAV, Kim et al. 2018) at tap {rel.tcav_layer}: the share '
                 f'of a class\'s images whose {what} rises along the concept\'s direction '
                 f'(the mean over the counterexample sets), tested against random concepts: '
                 f'sets of random images of the concept\'s size scored against the same '
                 f'counterexamples (the concept\'s mean among theirs, a two-sided t '
                 f'prediction interval; Holm-adjusted over the concepts of a class).')
    tables.append(document.Table(
        ('concept', 'class', 'TCAV score', 'p', 'p (Holm)', 'CAV accuracy'),
        [(c.concept, c.target, f'{c.score:.2f}', charts.format_p(c.p),
          charts.format_p(c.p_holm), f'{c.accuracy:.2f}') for c in rel.concepts],
        caption='concepts'))
  else:
    paras.append('No concept test: pass --concepts DIR (DIR/<concept>/*.png, DIR/random/*.png) '
                 'to test named concepts (TCAV).')
  return document.Section(TITLE, paras, tables, figs, lead=[rel.sentence])


def _about_labels(s: R.StrategyRow) -> str:
  if s.label_excess is None:
    return '-'
  return f'{_ci(s.label_excess)} {"yes" if s.informs_labels else "no"}'


def _share(v: float | None) -> str:
  return '-' if v is None or v != v else f'{v:.2f}'


def _slug(name: str) -> str:
  return ''.join(ch if ch.isalnum() else '_' for ch in name) or 'class'
