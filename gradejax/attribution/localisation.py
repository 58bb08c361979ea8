"""Localisation against a known region: does the map point at the planted cue?

``masks`` bool [B, H, W] mark the region per image (in chip coordinates; the demo's cue box
mapped through the chip affine). Both measures take maps [B, H, W].
"""
from __future__ import annotations

import numpy as np
import scipy.ndimage

from gradejax import stats


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


def relevance_rank_accuracy(heatmaps: np.ndarray, masks: np.ndarray) -> np.ndarray:
  """Arras et al. 2022: of the K most attributed pixels, K = the mask's size, the share inside
  the mask, [B] in [0, 1]. A random map scores the mask's area fraction in expectation; ties
  are broken by position (row-major), as ``np.argsort(kind='stable')`` on the negated map."""
  heatmaps, masks = np.asarray(heatmaps, np.float64), np.asarray(masks, bool)
  b = len(heatmaps)
  flat, inside = heatmaps.reshape(b, -1), masks.reshape(b, -1)
  out = np.empty(b)
  for i in range(b):
    k = int(inside[i].sum())
    if k == 0:
      raise ValueError('relevance_rank_accuracy: an empty mask (the cue lies outside the chip?)')
    top = np.argsort(-flat[i], kind='stable')[:k]
    out[i] = inside[i, top].mean()
  return out


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
                 ) -> tuple[float, float, float]:
  """Mean of per-image ``values`` (NaNs dropped) and its percentile bootstrap CI over images:
  (mean, low, high); NaN for all three without values."""
  v = np.asarray(values, np.float64).ravel()
  v = v[np.isfinite(v)]
  if v.size == 0:
    return float('nan'), float('nan'), float('nan')
  means = v[stats.bootstrap_indices(v.size, n_boot, seed)].mean(axis=1)
  lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
  return float(v.mean()), float(lo), float(hi)
