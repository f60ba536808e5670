"""The drift statistics: one per kind of feature, each comparing a window with the reference.

* categories (the conclusion's fields): the population stability index (PSI),
  with half a count added to every category so a category one side never saw
  gives a finite, large value rather than infinity;
* scalars (durations, frame rate, loudness, pitch, similarities): the two-sample
  Kolmogorov-Smirnov statistic, the largest gap between the two empirical
  distribution functions (scale-free, so one threshold rule fits seconds and Hz);
* embeddings (the extractors' query vectors, projected on the reference's
  principal axes): the squared maximum mean discrepancy with a Gaussian kernel
  whose width is the reference's median pairwise distance.

Each returns the raw statistic; :mod:`dubops.monitoring.reference` calibrates
what counts as drift for a window of a given size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

PSI, KS, MMD = "psi", "ks", "mmd"
_SMOOTHING = 0.5  # counts added per category (Jeffreys-like)


def psi(reference_counts: Mapping[str, float], window: Sequence[str]) -> float:
    """Population stability index of the window's categories against the reference's."""
    categories = sorted(set(reference_counts) | set(window))
    ref = np.array([reference_counts.get(c, 0.0) for c in categories], dtype=np.float64)
    values, counts = np.unique(np.asarray(window, dtype=object).astype(str), return_counts=True)
    seen = dict(zip(values.tolist(), counts.tolist(), strict=True))
    win = np.array([seen.get(c, 0) for c in categories], dtype=np.float64)
    p = (ref + _SMOOTHING) / (ref.sum() + _SMOOTHING * len(categories))
    q = (win + _SMOOTHING) / (win.sum() + _SMOOTHING * len(categories))
    return float(np.sum((q - p) * np.log(q / p)))


def ks(reference_sorted: np.ndarray, window: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (NaNs dropped; NaN if a side is empty)."""
    ref = np.asarray(reference_sorted, dtype=np.float64)
    ref = ref[np.isfinite(ref)]
    win = np.sort(np.asarray(window, dtype=np.float64))
    win = win[np.isfinite(win)]
    if not len(ref) or not len(win):
        return float("nan")
    points = np.concatenate([ref, win])
    cdf_ref = np.searchsorted(ref, points, side="right") / len(ref)
    cdf_win = np.searchsorted(win, points, side="right") / len(win)
    return float(np.max(np.abs(cdf_ref - cdf_win)))


def gaussian_kernel(a: np.ndarray, b: np.ndarray, bandwidth: float) -> np.ndarray:
    """``exp(-|a_i - b_j|^2 / (2 bandwidth^2))`` for every pair."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.exp(-np.maximum(sq, 0.0) / (2 * bandwidth * bandwidth))


def mmd(reference: np.ndarray, window: np.ndarray, bandwidth: float) -> float:
    """Squared maximum mean discrepancy (biased V-statistic: never negative)."""
    if not len(reference) or not len(window):
        return float("nan")
    return mmd_from_kernel(
        gaussian_kernel(reference, reference, bandwidth).mean(),
        gaussian_kernel(window, window, bandwidth).mean(),
        gaussian_kernel(reference, window, bandwidth).mean(),
    )


def mmd_from_kernel(k_ref: float, k_win: float, k_cross: float) -> float:
    """MMD² from the three kernel means (the calibration reuses one kernel matrix)."""
    return float(max(k_ref + k_win - 2 * k_cross, 0.0))


def median_distance(points: np.ndarray) -> float:
    """The median pairwise Euclidean distance (the kernel width rule of thumb)."""
    sq = (points * points).sum(1)[:, None] + (points * points).sum(1)[None, :]
    sq = np.maximum(sq - 2 * points @ points.T, 0.0)
    upper = np.sqrt(sq[np.triu_indices(len(points), k=1)])
    upper = upper[upper > 0]
    return float(np.median(upper)) if len(upper) else 1.0
