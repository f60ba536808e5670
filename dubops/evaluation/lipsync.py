"""LSE-D / LSE-C proxies: mouth-opening track against the speech envelope.

SyncNet (Chung & Zisserman 2016) scores lip sync by the audio-visual embedding
distance at the best offset (LSE-D, lower better) and by how much that minimum
stands out of the distances over all offsets (LSE-C: median - min, higher better).
Our proxy replaces the embedding distance with the correlation of the measured
mouth opening (:func:`dubops.speech.mouth.measure_mouth_openings`) and the speech
RMS envelope per video frame (:func:`dubops.audio.speech_envelope`):
``distance = 1 - peak correlation`` and ``confidence = peak - median correlation``.

Mouth tracks come from the drawn cartoon mouths (``cartoon``, our synthetic
corpus) or from MediaPipe face landmarks on filmed faces (``face-mesh``). Both
trackers live in :mod:`dubops.speech.mouth`, because the speech generator reads
the same tracks at inference; evaluation imports them from there, so the metric
scores the mouths the generator aligned to. The exact SyncNet scores, from
weights at a local path, are in :mod:`dubops.evaluation.syncnet`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dubops.data.report.lipsync import pearson
from dubops.speech.mouth import MouthTrack, character_boxes, measure_mouth_openings, track_mouth

MOUTH_TRACKERS = ("cartoon", "face-mesh")


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


def _cartoon_face_boxes(num_people: int, talker_index: int, size: int, n: int) -> np.ndarray:
    """The drawn head's box: radius 0.34 slot widths, centred 1.5 radii below the slot's
    top (the slot geometry of :mod:`dubops.speech.mouth`)."""
    x0, y0, x1, _ = character_boxes(num_people, size)[talker_index]
    r = 0.34 * (x1 - x0)
    cx, cy = (x0 + x1) / 2, y0 + 1.5 * r
    return np.tile([cx - r, cy - r, cx + r, cy + r], (n, 1)).astype(np.float64)


def track_talker_mouth(
    video_frames: np.ndarray, num_people: int, talker_index: int, tracker: str = "cartoon"
) -> MouthTrack:
    """The talking character's mouth opening (and face box) per frame.

    Args:
        video_frames: uint8 ``(n, h, w, 3)`` RGB frames.
        num_people: characters on screen (cartoon slots).
        talker_index: the talking character; negative for narration (no one talks).
        tracker: ``cartoon`` (drawn mouths) or ``face-mesh`` (the most prominent
            filmed face; ``num_people`` and ``talker_index`` then only tell narration).

    Returns:
        The :class:`MouthTrack`; ``opening`` is None for narration or when no face is found.
    """
    if tracker not in MOUTH_TRACKERS:
        raise ValueError(f"unknown mouth tracker {tracker!r}; choose one of {MOUTH_TRACKERS}")
    if talker_index < 0:
        return MouthTrack(None, None, "narration: no one on screen talks")
    if talker_index >= num_people:
        raise ValueError(f"talker_index {talker_index} out of range for {num_people} people")
    if tracker == "face-mesh":
        return track_mouth(video_frames)
    mouths = measure_mouth_openings(video_frames, num_people)  # (p, n)
    n, _, size = np.asarray(video_frames).shape[:3]
    return MouthTrack(mouths[talker_index], _cartoon_face_boxes(num_people, talker_index, size, n))


def clip_sync(
    video_frames: np.ndarray,
    num_people: int,
    talker_index: int,
    wave: np.ndarray,
    sample_rate: int,
    fps: int,
    tracker: str = "cartoon",
) -> SyncResult | None:
    """Sync of the talking character's mouth with the clip's speech.

    Args:
        video_frames: uint8 ``(n, h, w, 3)`` RGB frames of the clip.
        num_people: characters on screen.
        talker_index: the talking character; negative for narration (no one talks).
        wave: ``(t,)`` mono speech.
        sample_rate: rate of ``wave``.
        fps: video frame rate.
        tracker: mouth tracker, one of :data:`MOUTH_TRACKERS`.

    Returns:
        The :class:`SyncResult`, or None for narration or a clip without a face.
    """
    track = track_talker_mouth(video_frames, num_people, talker_index, tracker)
    return None if track.opening is None else sync_with_track(track.opening, wave, sample_rate, fps)


def sync_with_track(
    opening: np.ndarray, wave: np.ndarray, sample_rate: int, fps: int
) -> SyncResult:
    """:func:`av_sync` of a mouth track with the envelope of ``wave``."""
    from dubops.audio import speech_envelope

    return av_sync(opening, speech_envelope(wave, sample_rate, fps))
