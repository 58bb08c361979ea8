"""Localisation against a known region: does the map point at the planted cue?

``masks`` bool [B, H, W] mark the region per image (in chip coordinates; the demo's cue box
mapped through the chip affine). Both measures take maps [B, H, W].
"""
from __future__ import annotations

import numpy as np
import scipy.ndimage


def mass_inside(heatmaps: np.ndarray, masks: np.ndarray) -> np.ndarray:
  """Fraction of the positive attribution mass inside the mask, [B] (NaN without positive
  mass). A map uniform over the image scores the mask's area fraction."""
  pos = np.maximum(np.asarray(heatmaps, np.float64), 0)
  total = pos.sum(axis=(1, 2))
  inside = (pos * np.asarray(masks, bool)).sum(axis=(1, 2))
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(total > 0, inside / total, np.nan)


def pointing_game(heatmaps: np.ndarray, masks: np.ndarray, tolerance: float = 4.0
                  ) -> np.ndarray:
  """Zhang et al. 2016: is the map's maximum within ``tolerance`` pixels (Euclidean) of the
  mask? bool [B]. (The paper uses 15 px on 224 px images; 4 px suits 150 px chips and coarse
  maps less generously.) Ties: the first maximum in row-major order."""
  heatmaps, masks = np.asarray(heatmaps), np.asarray(masks, bool)
  hits = []
  for m, mask in zip(heatmaps, masks):
    if not mask.any():
      raise ValueError('pointing_game: an empty mask (the cue region lies outside the chip?)')
    dist = scipy.ndimage.distance_transform_edt(~mask)
    y, x = np.unravel_index(np.argmax(m), m.shape)
    hits.append(dist[y, x] <= tolerance)
  return np.array(hits)
