"""What the network relies on, in words: the sentence a report quotes from the dataset-level
strategies (:mod:`gradejax.attribution.spray`) and the concept tests
(:mod:`gradejax.attribution.tcav`), with the null-verdict caveat first when it applies.

Regions are named on the aligned face chip (dlib's 5-point template, so the names hold for
every chip ``prepare`` writes): the nearest of a few face landmarks and parts to the region's
centre of mass. "left" and "right" are the image's (the viewer's), not the person's.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import scipy.ndimage

from gradejax.attribution.spray import CausalCheck, Strategy
from gradejax.attribution.tcav import ConceptTest

CHANCE_CAVEAT = ("The network's predictions are not distinguishable from chance (the verdict): "
                 'these maps explain a network that predicts grades no better than chance, so '
                 'nothing in them is evidence about grades.')
CONDITIONS_CAVEAT = ('The verdict finds that photo conditions, not faces, carry the signal: these '
                     'maps show where removing pixels moves the network\'s output, and a '
                     'condition of the whole photo (colour, compression, sharpness) has no such '
                     'place, so read the regions below as where its output can be disturbed, '
                     'not as where the grade signal is.')


def face_parts(size: int = 150) -> dict[str, tuple[float, float]]:
  """Named points of an aligned dlib chip of side ``size``: name -> (row, col) pixels, from
  dlib's 5-point template (eye corners, nose base) and the eye distance."""
  from gradejax.data import faces  # the chip's geometry lives with the aligner
  p = faces.template_points(size)  # (x, y): right outer, right inner, left outer, left inner, nose
  eye_a, eye_b = p[2:4].mean(axis=0), p[0:2].mean(axis=0)  # image-left eye, image-right eye
  nose = p[4]
  d = eye_b[0] - eye_a[0]
  cx, ey = nose[0], (eye_a[1] + eye_b[1]) / 2
  pts = {
      'left eye': eye_a, 'right eye': eye_b, 'forehead': (cx, ey - 0.6 * d),
      'bridge of the nose (between the eyes)': (cx, ey),
      'left cheekbone (under the eye)': (eye_a[0], (ey + nose[1]) / 2),
      'right cheekbone (under the eye)': (eye_b[0], (ey + nose[1]) / 2),
      'nose': (cx, (ey + nose[1]) / 2 + 0.15 * d), 'mouth': (cx, nose[1] + 0.45 * d),
      'chin': (cx, nose[1] + 0.95 * d), 'left cheek': (eye_a[0] - 0.1 * d, nose[1]),
      'right cheek': (eye_b[0] + 0.1 * d, nose[1]),
      'left jaw': (eye_a[0] - 0.05 * d, nose[1] + 0.6 * d),
      'right jaw': (eye_b[0] + 0.05 * d, nose[1] + 0.6 * d),
      'left edge (hair or ear)': (eye_a[0] - 0.75 * d, ey + 0.2 * d),
      'right edge (hair or ear)': (eye_b[0] + 0.75 * d, ey + 0.2 * d),
      'top of the head': (cx, 0.05 * size),
  }
  return {k: (float(v[1]), float(v[0])) for k, v in pts.items()}


def describe_region(weights: np.ndarray) -> str:
  """The face part nearest the centre of the region's main blob, e.g. 'the left cheek'.

  ``weights`` [H, W] >= 0 counted: a region mask, a mean map, or a mean map inside its region
  (how the battery calls it). The main blob is the connected part of ``weights > 0`` holding the
  maximum (for a mask: its first pixel), and its centre is the weighted mean of its pixels: a
  region of two blobs (a cue and a face part) is named by the blob it peaks in, not by the
  empty point between them."""
  w = np.maximum(np.asarray(weights, np.float64), 0)
  if w.sum() <= 0:
    return 'no particular place'
  h, wd = w.shape
  blobs, _ = scipy.ndimage.label(w > 0, structure=np.ones((3, 3)))
  w = np.where(blobs == blobs.flat[int(np.argmax(w))], w, 0.0)
  rows, cols = np.mgrid[0:h, 0:wd]
  cy, cx = (w * rows).sum() / w.sum(), (w * cols).sum() / w.sum()
  parts = face_parts(h) if h == wd else {k: (r * h / 150, c * wd / 150)
                                          for k, (r, c) in face_parts(150).items()}
  name = min(parts, key=lambda k: (parts[k][0] - cy) ** 2 + (parts[k][1] - cx) ** 2)
  return f'the {name}'


def format_p(p: float) -> str:
  return 'p < 0.001' if p < 0.001 else f'p = {p:.3f}'


@dataclasses.dataclass(frozen=True)
class StrategyFinding:
  """A strategy with its causal check, ready to quote. ``class_name``: the predicted class."""
  strategy: Strategy
  check: CausalCheck
  class_name: str


def select_strategy(findings: Sequence[StrategyFinding]) -> StrategyFinding | None:
  """The strategy to quote: among those whose region beats a random one (excess CI above 0),
  the one the network relies on most across its class: the largest share x mean excess drop
  (the drop beyond a random region that removing it costs an average image of the class), so
  a strategy used by every image but barely needed does not outrank one that most images
  depend on. Without a causal strategy, the largest overall (None if none)."""
  if not findings:
    return None
  causal = [f for f in findings if f.check.beats_random]
  if causal:
    return max(causal, key=lambda f: (f.strategy.share * f.check.excess[0], f.strategy.size))
  return max(findings, key=lambda f: (f.strategy.share, f.strategy.size))


def share_of_chip(area: float) -> str:
  """A region's share of the chip, as the report prints it: '1.5%', '5%', '15%'."""
  return f'{100 * area:.2g}%'


def strategy_clause(f: StrategyFinding, score: str = 'logit') -> str:
  where = describe_region(f.check.region * f.strategy.mean_map)
  size = share_of_chip(f.check.area)
  share = f'{100 * f.strategy.share:.0f}% of the images predicted {f.class_name!r}'
  drop, rand = f.check.drop[0], f.check.random_drop[0]
  if f.check.beats_random:
    return (f'{share} share one strategy whose region of {size} of the chip, at {where}, drops '
            f'the {score} by {drop:.2f} when removed (a random region of the same area: '
            f'{rand:.2f})' + labels_clause(f.check))
  return (f"no strategy's region drops the {score} more than a random region of the same area "
          f'(the largest: {share}, region of {size} at {where}, drop {drop:.2f} vs '
          f'{rand:.2f})')


def labels_clause(check: CausalCheck) -> str:
  """What removing a used region does to the true classes' contrast (empty without labels):
  whether what the network reads there is evidence about the labels."""
  if check.label_excess is None:
    return ''
  x, lo, hi = check.label_excess
  if check.informs_labels:
    return (f', and removing it lowers the contrast toward the true classes by {x:.2f} more '
            f'than a random region does [{lo:.2f}, {hi:.2f}]')
  return (f', but removing it lowers the contrast toward the true classes no more than a '
          f'random region does ({x:.2f} [{lo:.2f}, {hi:.2f}]): no evidence that what it reads '
          f'there is about them')


def concept_clause(tests: Sequence[ConceptTest], class_names: Sequence[str],
                   alpha: float = 0.05) -> str:
  if not tests:
    return ''
  hits = sorted((t for t in tests if t.significant(alpha)), key=lambda t: t.p_holm)
  if not hits:
    return (f'no concept tested ({", ".join(sorted({repr(t.concept) for t in tests}))}) moves '
            f'the class score differently from random concepts (TCAV, Holm p >= {alpha})')
  return '; '.join(f'concept {t.concept!r} TCAV {t.score:.2f} for {class_names[t.target]!r}, '
                   f'{format_p(t.p_holm)}' for t in hits)


def quotable(strategy: StrategyFinding | None, concepts: Sequence[ConceptTest],
             class_names: Sequence[str], *, chance: bool = False, conditions: bool = False,
             alpha: float = 0.05, score: str = 'logit') -> str:
  """The one sentence to quote, e.g. "62% of the images predicted 'at or above' share one
  strategy whose region of 1.5% of the chip, at the left cheek, drops the logit by 1.90 when
  removed (a random region of the same area: 0.10), and removing it lowers the contrast
  toward the true classes by 2.1 more than a random region does [0.9, 3.3]; concept 'sticker'
  TCAV 0.97 for 'at or above', p < 0.001."

  ``strategy``: from :func:`select_strategy` (None: no maps were clustered); ``concepts``: the
  concept tests (Holm-adjusted p); ``chance``: the network's own predictions are not
  distinguishable from chance (:func:`gradejax.attribution.battery.relies.chance_verdict`),
  which puts :data:`CHANCE_CAVEAT` first; ``conditions``: the verdict's answer is photo
  conditions while the network beats chance
  (:func:`gradejax.attribution.battery.relies.conditions_verdict`), which puts
  :data:`CONDITIONS_CAVEAT` first.
  """
  parts = [strategy_clause(strategy, score)] if strategy is not None else []
  c = concept_clause(concepts, class_names, alpha)
  if c:
    parts.append(c)
  body = '; '.join(parts)
  body = (body[:1].upper() + body[1:] + '.') if body else ''
  caveat = CHANCE_CAVEAT if chance else CONDITIONS_CAVEAT if conditions else ''
  return f'{caveat} {body}'.strip()
