"""Lip-sync: do the talking character's mouth openings follow the speech envelope?

Per clip and character, the Pearson correlation between the mouth-opening
track measured on the decoded video and the speech RMS envelope per video
frame (:func:`dubops.audio.speech_envelope`). Talking characters should
correlate highly, silent ones (every other character, narration included)
not at all; a constant track has no correlation and counts as 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dubops.data.report.clips import REPORT_SAMPLE_RATE

if TYPE_CHECKING:
    import pandas as pd

    from dubops.data.report.frames import ClipVideo

# Lags searched (video frames) to report where the mouth peaks relative to the speech.
MAX_LAG_FRAMES = 3


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two equal-length series; 0 when either is constant."""
    a = np.asarray(a, dtype=float) - np.mean(a)
    b = np.asarray(b, dtype=float) - np.mean(b)
    denom = np.sqrt((a**2).sum() * (b**2).sum())
    return float((a * b).sum() / denom) if denom > 1e-12 else 0.0


def best_lag(mouth: np.ndarray, envelope: np.ndarray, max_lag: int = MAX_LAG_FRAMES) -> int:
    """Lag (frames, positive = mouth late) that maximises the correlation."""
    n = min(len(mouth), len(envelope))
    scores = {}
    for lag in range(-max_lag, max_lag + 1):
        m = mouth[max(lag, 0) : n + min(lag, 0)]
        e = envelope[max(-lag, 0) : n - max(lag, 0)]
        if len(m) > 2:
            scores[lag] = pearson(m, e)
    return max(scores, key=scores.get) if scores else 0


def clip_correlations(
    mouths: np.ndarray, envelope: np.ndarray, talker_index: int
) -> tuple[list[float], list[float]]:
    """``(talker correlations, silent correlations)`` of one clip.

    Args:
        mouths: ``(p, n)`` mouth openings per character and video frame.
        envelope: ``(m,)`` speech envelope per video frame; both are cut to
            the shorter length (audio and video may differ by a frame).
        talker_index: the talking character, -1 when none talks.
    """
    n = min(mouths.shape[1], len(envelope))
    talkers, silent = [], []
    for k in range(mouths.shape[0]):
        r = pearson(mouths[k, :n], envelope[:n])
        (talkers if k == talker_index else silent).append(r)
    return talkers, silent


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def measure_lipsync(
    clips: pd.DataFrame, waves: dict[str, np.ndarray], videos: dict[str, ClipVideo]
) -> dict:
    """Mean mouth/envelope correlation of talking and of silent characters."""
    from dubops.audio import speech_envelope

    talkers: list[float] = []
    silent: list[float] = []
    lags: list[int] = []
    for row in clips.itertuples(index=False):
        video = videos[row.clip_id]
        if video.mouths.shape[0] == 0:
            continue
        envelope = speech_envelope(waves[row.clip_id], REPORT_SAMPLE_RATE, video.fps)
        t, s = clip_correlations(video.mouths, envelope, int(row.talker_index))
        talkers += t
        silent += s
        if 0 <= row.talker_index < video.mouths.shape[0]:
            lags.append(best_lag(video.mouths[row.talker_index], envelope))
    return {
        "talkers": _mean(talkers),
        "silent": _mean(silent),
        "talker_tracks": len(talkers),
        "silent_tracks": len(silent),
        "talkers_below_0_5": int(np.sum(np.asarray(talkers) < 0.5)),
        "talker_best_lag_frames": float(np.median(lags)) if lags else None,
    }
