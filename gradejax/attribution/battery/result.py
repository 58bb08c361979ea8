"""The battery's typed result: what the report renders, nothing it has to compute.

Confidence intervals are ``(mean, low, high)`` tuples over images (percentile bootstrap).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

CI = tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class Shown:
  """The shown images and their maps: ``raw`` uint8 [B, H, W, 3], ``ids`` [B], predicted
  ``targets`` int32 [B] and ``classes`` (logits per image), ``labels`` (class names or '?'),
  ``maps`` method -> [B, H, W] (float, or int32 class indices for region methods),
  ``skipped`` method -> why, ``layer`` the tap of the layer methods."""
  raw: np.ndarray
  ids: list[str]
  targets: np.ndarray
  classes: int
  class_names: list[str]
  labels: list[str]
  maps: dict[str, np.ndarray]
  skipped: dict[str, str]
  layer: str


@dataclasses.dataclass(frozen=True)
class SanityRow:
  method: str
  stage: str  # '+ <subtree>' (cascading), 'labels shuffled', or 'failed: <why>'
  spearman: float
  spearman_abs: float
  ssim: float
  flagged: bool


@dataclasses.dataclass(frozen=True)
class Sanity:
  """``rows`` per method and stage; ``images`` used; ``not_run`` why the section is empty."""
  rows: list[SanityRow]
  images: int
  seed: int
  label_randomisation: bool
  not_run: str = ''


@dataclasses.dataclass(frozen=True)
class FaithfulnessRow:
  """Means over the images: deletion / insertion AUC and ROAD MoRF / LeRF AUC."""
  method: str
  deletion: float
  insertion: float
  road_morf: float
  road_lerf: float

  @property
  def insertion_minus_deletion(self) -> float:
    return self.insertion - self.deletion

  @property
  def lerf_minus_morf(self) -> float:
    return self.road_lerf - self.road_morf


@dataclasses.dataclass(frozen=True)
class ShownLocalisationRow:
  method: str
  mass: float  # mean share of positive attribution inside the cue
  pointing: float  # share of images whose maximum hits the cue (within the tolerance)
  images: int


@dataclasses.dataclass(frozen=True)
class FoldLocalisationRow:
  method: str
  images: int
  area: float  # mean share of the image the cue covers (a uniform map's mass inside)
  mass: CI
  pointing: CI
  rank: CI
  meets: bool  # pointing >= target and mass >= target x uniform


@dataclasses.dataclass(frozen=True)
class CausalRow:
  region: str  # a method's name, or '(the planted cue itself)'
  drop: CI
  random_drop: CI
  pixels: int


@dataclasses.dataclass(frozen=True)
class StrategyRow:
  """One SpRAy strategy of the images predicted as ``predicted`` (a class name): ``size``
  images, ``share`` of the class's, ``class_mix`` true label -> share of members,
  ``mean_map`` float [H, W] (members' maps, each summing to 1, averaged), ``where`` its region
  named on the chip; the causal check on ``checked`` members (logit drop when the region is
  removed, ``drop``, vs random squares of its area, ``random_drop``, paired ``excess``);
  ``purity`` the share of members carrying the planted cue; ``peak_in_cue`` the share of the
  cue-bearing members whose cue region holds the mean map's peak (within the pointing game's
  tolerance): does the strategy's map point at the cue, in numbers (both None without truth;
  ``peak_in_cue`` also NaN without cue-bearing members); ``label_excess`` the paired excess
  for the contrast toward each checked member's true class (labels, not truth: is what the
  strategy reads evidence about the labels? :class:`gradejax.attribution.spray.CausalCheck`;
  None where the images have no labels); ``area``: the removed region's share of the chip
  (the area of those tried that the check reports; CIs adjusted for trying them)."""
  predicted: str
  size: int
  share: float
  class_mix: dict[str, float]
  mean_map: np.ndarray
  where: str
  checked: int
  drop: CI
  random_drop: CI
  excess: CI
  purity: float | None = None
  peak_in_cue: float | None = None
  label_excess: CI | None = None
  area: float | None = None  # the removed region's share of the chip

  @property
  def beats_random(self) -> bool:
    return bool(self.excess[1] > 0)

  @property
  def informs_labels(self) -> bool | None:
    return None if self.label_excess is None else bool(self.label_excess[1] > 0)


@dataclasses.dataclass(frozen=True)
class ConceptRow:
  """TCAV of ``concept`` for class ``target`` (a name): mean ``score`` over the runs,
  t-test ``p`` against random concepts and Holm-adjusted ``p_holm``, CAV ``accuracy``."""
  concept: str
  target: str
  score: float
  p: float
  p_holm: float
  accuracy: float


@dataclasses.dataclass(frozen=True)
class Relies:
  """What the network relies on: the ``sentence`` to quote (the chance caveat first when
  ``chance``), ``strategies`` per predicted class (largest first), ``concepts`` (empty when no
  concept folder was given; ``tcav_layer`` the tap, ``tcav_score`` the score), ``method``
  whose maps were clustered on ``images`` images (``where`` says which), ``mean_chip`` uint8
  [H, W, 3] their mean image,
  ``truth``: whether purity was measured."""
  sentence: str
  chance: bool
  method: str
  images: int
  where: str
  strategies: list[StrategyRow]
  concepts: list[ConceptRow]
  tcav_layer: str
  mean_chip: np.ndarray
  truth: bool
  tcav_score: str = 'logit'  # what TCAV's directional derivative is of (class_score)


@dataclasses.dataclass(frozen=True)
class Result:
  """Everything the attribution report shows; ``options`` the battery's flat options (for the
  text that states them). ``shown_localisation`` is empty when no shown image carries the cue
  (``shown_note`` says why); ``fold_localisation`` likewise (``fold_note``, ``fold_measured``:
  whether cue masks were found); ``causal`` None when no method was measured; ``ranking``
  the method names best first and ``ranked_by`` 'localisation' or 'faithfulness'."""
  options: Any
  shown: Shown
  sanity: Sanity
  faithfulness: list[FaithfulnessRow]
  shown_localisation: list[ShownLocalisationRow]
  shown_area: float
  shown_note: str
  fold_localisation: list[FoldLocalisationRow]
  fold_note: str
  fold_measured: bool
  causal: list[CausalRow] | None
  ranking: list[str]
  ranked_by: str
  profile: dict[str, float] = dataclasses.field(default_factory=dict)  # section -> seconds
  relies: Relies | None = None  # None: no map of the method to cluster
