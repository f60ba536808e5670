"""LSE-D / LSE-C proxies: mouth-opening track against the speech envelope.

SyncNet (Chung & Zisserman 2016) scores lip sync by the audio-visual embedding
distance at the best offset (LSE-D, lower better) and by how much that minimum
stands out of the distances over all offsets (LSE-C: median - min, higher better).
Our proxy replaces the embedding distance with the correlation of the measured
mouth opening (:func:`dubops.data.cartoon.measure_mouth_openings`) and the speech
RMS envelope per video frame (:func:`dubops.audio.speech_envelope`):
``distance = 1 - peak correlation`` and ``confidence = peak - median correlation``.

Future work, not implemented: real SyncNet weights loaded from a local path, and
MediaPipe face landmarks for mouth openings on real (non-cartoon) faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dubops.data.report.lipsync import pearson


@dataclass(frozen=True)
class SyncResult:
    """Best audio-video offset of one clip and the two scores at it."""

    offset_frames: int  # positive: the audio lags the video (sound comes late)
    confidence: float  # peak - median correlation over lags (LSE-C proxy; higher better)
    distance: float  # 1 - peak correlation (LSE-D proxy; lower better)


def _zscore(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    std = x.std()
    return (x - x.mean()) / std if std > 1e-12 else np.zeros_like(x)


def av_sync(mouth_track: np.ndarray, envelope: np.ndarray, max_lag: int = 15) -> SyncResult:
    """Search the offset between a mouth track and a speech envelope.

    At lag ``k`` the envelope at frame ``t + k`` is paired with the mouth at frame
    ``t``, so a positive best offset means the audio lags the video by ``k`` frames.

    Args:
        mouth_track: ``(n,)`` mouth opening per video frame.
        envelope: ``(m,)`` speech envelope per video frame; both are cut to the shorter.
        max_lag: lags searched in each direction, in frames.

    Returns:
        The best offset, its confidence and distance.
    """
    n = min(len(mouth_track), len(envelope))
    if n <= 2 * max_lag + 2:
        raise ValueError(f"need more than {2 * max_lag + 2} frames for max_lag {max_lag}, got {n}")
    mouth = _zscore(mouth_track[:n])
    env = _zscore(envelope[:n])
    lags = np.arange(-max_lag, max_lag + 1)
    corr = np.array(
        [pearson(mouth[max(-k, 0) : n - max(k, 0)], env[max(k, 0) : n + min(k, 0)]) for k in lags]
    )
    best = int(np.argmax(corr))
    peak = float(corr[best])
    return SyncResult(
        offset_frames=int(lags[best]),
        confidence=peak - float(np.median(corr)),
        distance=1.0 - peak,
    )


def clip_sync(
    video_frames: np.ndarray,
    num_people: int,
    talker_index: int,
    wave: np.ndarray,
    sample_rate: int,
    fps: int,
) -> SyncResult | None:
    """Sync of the talking character's mouth with the clip's speech.

    Args:
        video_frames: uint8 ``(n, h, w, 3)`` RGB frames of the cartoon clip.
        num_people: characters on screen.
        talker_index: the talking character; negative for narration (no one talks).
        wave: ``(t,)`` mono speech.
        sample_rate: rate of ``wave``.
        fps: video frame rate.

    Returns:
        The :class:`SyncResult`, or None for narration.
    """
    from dubops.audio import speech_envelope
    from dubops.data.cartoon import measure_mouth_openings

    if talker_index < 0:
        return None
    if talker_index >= num_people:
        raise ValueError(f"talker_index {talker_index} out of range for {num_people} people")
    mouths = measure_mouth_openings(video_frames, num_people)  # (p, n)
    envelope = speech_envelope(wave, sample_rate, fps)
    return av_sync(mouths[talker_index], envelope)
