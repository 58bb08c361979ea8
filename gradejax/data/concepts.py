"""Concept folders for the demo's concept tests (TCAV, :mod:`gradejax.attribution.tcav`).

``write_concept_folders(out)`` writes ``out/<concept>/<k>.png``: aligned 150x150 face chips of
demo portraits (:mod:`gradejax.data.portraits`) that show one drawable part each, and
``out/random/`` of portraits drawn without any of them -- the counterexamples. Each image is
found and aligned by dlib as ``prepare`` does (:func:`gradejax.data.faces.find_face`, a centre
crop where no face is found, as ``--no_face centre``), so a concept chip looks like a data chip.

Concepts: ``'sticker'`` and ``'tag'`` (the two planted cues), ``'bald'`` (a hair style: a part
the demo never ties to grades, a concept that should come out *not* significant). Every other
attribute is drawn at random per image from its own seed stream, so a concept folder differs
from the random one only in its part. A researcher's own folders need nothing from here.
"""
from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np
from PIL import Image

from gradejax.data import faces, portraits

CONCEPTS = ('sticker', 'tag', 'bald')
_STREAM = 7_000_001  # seeds disjoint from demo_data's (seed, row, stream) streams


def concept_portrait(concept: str, seed: int, k: int) -> np.ndarray:
  """Photo ``k`` of a concept (or of ``'random'``): uint8 [300, 260, 3]."""
  if concept not in CONCEPTS + ('random',):
    raise ValueError(f'unknown concept {concept!r}; known: {", ".join(CONCEPTS)}, random')
  rng = np.random.default_rng([seed, _STREAM, CONCEPTS.index(concept) + 1
                               if concept in CONCEPTS else 0, k])
  params = portraits.sample_params(rng)
  sticker, tag = portraits.sample_sticker(rng), portraits.sample_tag(rng)
  if concept == 'bald':
    params = dict(params, hair_style='bald')
  elif params['hair_style'] == 'bald':  # keep the random and other folders free of the part
    params = dict(params, hair_style='short')
  image, _ = portraits.draw(params, sticker if concept == 'sticker' else None,
                            tag=tag if concept == 'tag' else None)
  return image


def _portrait_job(job: tuple[str, int, int]) -> np.ndarray:
  return concept_portrait(*job)


def write_concept_folders(out: str | pathlib.Path, *, n: int = 30, n_random: int = 330,
                          concepts: Sequence[str] = CONCEPTS, seed: int = 0,
                          workers: int = 1) -> dict[str, int]:
  """Writes ``n`` chips per concept and ``n_random`` random ones under ``out``; returns the
  count per folder. TCAV (:func:`gradejax.attribution.tcav.design`) splits ``random/`` into
  random concepts of ``n`` chips (10 at the defaults; at least 5) and a counterexample pool of
  ``5 max(2, n // 10)`` chips or more, so ``random/`` needs about ``11 n`` chips.
  ``workers``: processes drawing the portraits (0: one per core; same bytes for any count);
  dlib aligns them in this process (while the workers draw)."""
  from gradejax.data import demo_data  # map_rows; demo_data does not import this module
  out = pathlib.Path(out)
  models = faces.load_models('hog')
  options = faces.FaceOptions(no_face='centre')
  plan = [(c, n) for c in concepts] + [('random', n_random)]
  jobs = [(concept, seed, k) for concept, count in plan for k in range(count)]
  for (concept, _, k), photo in zip(jobs, demo_data.map_rows(_portrait_job, jobs, workers)):
    folder = out / concept
    folder.mkdir(parents=True, exist_ok=True)
    face, _ = faces.find_face(models, photo, options)
    Image.fromarray(face.chip).save(folder / f'{k:04d}.png')
  return {concept: count for concept, count in plan}
