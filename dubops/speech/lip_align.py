"""Lip alignment: place the predicted words where the talker's mouth moves.

The duration predictor times speech from the phonemes and the conclusion; the
frame encoder's 48-pixel frames keep too little of a mouth for its
cross-attention to matter (refinement with the video zeroed reaches the same
onset error). The mouth's motion is still in the full-resolution video, and a
mouth tracker reads it as one opening value per video frame. This module moves
the predicted *words* (runs of spoken phonemes between pause slots) onto the
frames where the mouth is open, by dynamic programming:

* each word keeps its phonemes' relative lengths and may stretch by a ratio from
  a small grid (``ratios``, each off-1 ratio costing ``ratio_cost``);
* the silences between words are the pause slots' frames: a word boundary
  without a pause phoneme cannot open a gap, and the slot total stays exact;
* a word placed on frames ``[s, e)`` scores the sum of the z-scored mouth
  opening there, minus ``shift_cost`` per frame its start moved from the
  prediction (so a flat or ambiguous track leaves the prediction as it was).

Of several candidate tracks (every face, or every slot layout of the cartoon
corpus) the one that moves most is taken as the talker's
(:func:`talker_track`). Everything is integer frames in the mel rate;
O(words x ratios x frames) numpy work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dubops.speech.duration import fit_frames
from dubops.speech.mouth import measure_mouth_openings, track_mouth

if TYPE_CHECKING:
    from dubops.speech.settings import LipAlignConfig


@dataclass(frozen=True)
class LipAlignment:
    """Aligned frames per phoneme, the track they were placed on, and the gain."""

    frames: np.ndarray  # (p,) int, same total as the input
    track: int  # index of the chosen mouth track
    gain: float  # activity under the words on that track, aligned minus predicted (>= 0)


def mouth_tracks(frames: np.ndarray, tracker: str) -> np.ndarray | None:
    """Candidate mouth-opening tracks ``(k, n)`` of a clip's full-resolution frames.

    ``cartoon``: the synthetic corpus's drawn mouths in every slot layout of one
    to three characters (the count is not known here; a window on a wall reads a
    flat track, which scores nothing). ``face-mesh``: MediaPipe landmarks on the
    most visible face; None when no face is found. Both trackers are
    :mod:`dubops.speech.mouth`'s.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"video frames must be (n, h, w, 3) RGB, got {frames.shape}")
    if tracker == "cartoon":
        # A black frame has no face luma to measure against: read it as closed.
        with np.errstate(divide="ignore", invalid="ignore"):
            tracks = np.concatenate([measure_mouth_openings(frames, n) for n in (1, 2, 3)])
        return np.nan_to_num(tracks, nan=0.0, posinf=0.0, neginf=0.0)
    if tracker == "face-mesh":
        opening = track_mouth(frames).opening
        return None if opening is None else np.asarray(opening, dtype=np.float64)[None]
    raise ValueError(f"speech.lip_align.tracker {tracker!r}: use cartoon, face-mesh or none")


def mouth_activity(opening: np.ndarray, mel_frames: int) -> np.ndarray:
    """A per-video-frame mouth opening -> z-scored activity per mel frame.

    Linear interpolation of frame centres; a flat track reads all zeros.
    """
    opening = np.asarray(opening, dtype=np.float64)
    if opening.ndim != 1 or len(opening) == 0:
        raise ValueError(f"mouth opening must be a non-empty (n,) track, got {opening.shape}")
    std = opening.std()
    z = (opening - opening.mean()) / std if std > 1e-9 else np.zeros_like(opening)
    video_t = (np.arange(len(z)) + 0.5) / len(z)
    mel_t = (np.arange(mel_frames) + 0.5) / mel_frames
    return np.interp(mel_t, video_t, z)


def _words(pause: np.ndarray) -> list[tuple[int, int]]:
    """Half-open phoneme index ranges of the runs of spoken phonemes."""
    words, start = [], None
    for i, silent in enumerate(pause):
        if not silent and start is None:
            start = i
        elif silent and start is not None:
            words.append((start, i))
            start = None
    if start is not None:
        words.append((start, len(pause)))
    return words


def _placement_score(starts: Sequence[int], lengths: Sequence[int], prefix: np.ndarray) -> float:
    return float(sum(prefix[s + n] - prefix[s] for s, n in zip(starts, lengths, strict=True)))


def align_words(
    frames: np.ndarray,
    pause: np.ndarray,
    activity: np.ndarray,
    config: LipAlignConfig,
) -> tuple[np.ndarray, float]:
    """Re-time the words of one utterance onto one activity track.

    Args:
        frames: ``(p,)`` predicted integer frames per phoneme (already fitted to the slot).
        pause: ``(p,)`` True on pause phonemes (the only places a gap may open).
        activity: ``(sum(frames),)`` z-scored mouth activity per mel frame.

    Returns:
        ``(aligned frames (p,), gain)``: the gain is the placement's activity
        score minus the prediction's, never negative (the prediction itself is
        one of the candidates).
    """
    frames = np.asarray(frames, dtype=np.int64)
    pause = np.asarray(pause, dtype=bool)
    total = int(frames.sum())
    if len(activity) != total:
        raise ValueError(f"activity has {len(activity)} frames, the durations sum to {total}")
    words = _words(pause)
    if not words:
        return frames.copy(), 0.0
    prefix = np.concatenate([[0.0], np.cumsum(activity)])
    starts_pred = np.cumsum(frames) - frames
    predicted_len = [int(frames[a:b].sum()) for a, b in words]
    predicted_start = [int(starts_pred[a]) for a, _ in words]
    # A gap may open before word k only when a pause phoneme precedes it.
    gap_before = [
        bool(pause[:a].any()) if k == 0 else bool(pause[words[k - 1][1] : a].any())
        for k, (a, _) in enumerate(words)
    ]
    gap_after_last = bool(pause[words[-1][1] :].any())
    positions = np.arange(total + 1)
    neg = -np.inf
    # best[e]: best score of the words so far with the last ending exactly at e.
    best = np.full(total + 1, neg)
    best[0] = 0.0
    back: list[tuple[np.ndarray, np.ndarray]] = []  # per word: (ratio index, previous end)
    for k, (a, b) in enumerate(words):
        if gap_before[k]:
            # Running max over earlier ends: any gap >= 0.
            run_max = np.maximum.accumulate(best)
            at_max = np.isfinite(best) & (best == run_max)
            prev_best = run_max
            prev_end = np.maximum.accumulate(np.where(at_max, positions, 0))
        else:
            prev_best, prev_end = best, positions
        new = np.full(total + 1, neg)
        choice = np.zeros(total + 1, dtype=np.int64)
        source = np.zeros(total + 1, dtype=np.int64)
        for r, ratio in enumerate(config.ratios):
            length = round(predicted_len[k] * ratio)
            if length < b - a or length > total:
                continue
            ends = positions[length:]
            starts = ends - length
            cand = (
                prev_best[starts]
                + prefix[ends]
                - prefix[starts]
                - config.shift_cost * np.abs(starts - predicted_start[k])
                - (config.ratio_cost if ratio != 1.0 else 0.0)
            )
            better = cand > new[length:]
            new[length:] = np.where(better, cand, new[length:])
            choice[length:] = np.where(better, r, choice[length:])
            source[length:] = np.where(better, prev_end[starts], source[length:])
        back.append((choice, source))
        best = new
    # Trailing silence only where a pause phoneme ends the line.
    end = int(np.argmax(best)) if gap_after_last else total
    if not np.isfinite(best[end]):
        # No placement at all: only when spoken phonemes came in with 0 frames
        # (a word shorter than its phoneme count at every ratio).
        return frames.copy(), 0.0
    ends, lengths = [], []
    for k in range(len(words) - 1, -1, -1):
        choice, source = back[k]
        length = round(predicted_len[k] * config.ratios[choice[end]])
        ends.append(end)
        lengths.append(length)
        end = int(source[end])
    ends.reverse()
    lengths.reverse()
    starts = [e - n for e, n in zip(ends, lengths, strict=True)]
    out = np.zeros_like(frames)
    cursor = 0
    for k, (a, b) in enumerate(words):
        gap = starts[k] - cursor
        if gap:
            # The gap goes to the first pause phoneme before the word.
            lo = 0 if k == 0 else words[k - 1][1]
            out[lo + int(np.argmax(pause[lo:a]))] += gap
        out[a:b] = fit_frames(np.maximum(frames[a:b], 1), np.ones(b - a, np.int64), lengths[k])
        cursor = ends[k]
    if cursor < total:
        out[words[-1][1] + int(np.argmax(pause[words[-1][1] :]))] += total - cursor
    assert out.sum() == total, "align_words keeps the total"
    gain = _placement_score(starts, lengths, prefix) - _placement_score(
        predicted_start, predicted_len, prefix
    )
    return out, gain


def talker_track(openings: np.ndarray) -> int:
    """The track whose mouth moves most: mean absolute change per video frame.

    A talking mouth opens and closes with every syllable; idle mouths drift or
    part now and then (the reasoner's motion image rests on the same contrast,
    :mod:`dubops.reasoning.clip_images`), and a window that misses every mouth
    reads a flat track. Measured on the tiny corpus's 78 test clips with a
    talker, the most-moving window is the talker's (or its same-place twin in
    another slot layout) in every clip where the best fit to the words was
    right in only 33 %: fitting picks any track that happens to close where
    the prediction pauses.
    """
    openings = np.atleast_2d(np.asarray(openings, dtype=np.float64))
    if openings.shape[1] < 2:
        return 0
    return int(np.argmax(np.abs(np.diff(openings, axis=1)).mean(axis=1)))


def align_to_mouth(
    frames: np.ndarray, pause: np.ndarray, openings: np.ndarray, config: LipAlignConfig
) -> LipAlignment:
    """Align the words onto the talker's track among ``(tracks, video_frames)``."""
    openings = np.atleast_2d(np.asarray(openings, dtype=np.float64))
    if len(openings) == 0:
        raise ValueError("align_to_mouth needs at least one mouth track")
    track = talker_track(openings)
    activity = mouth_activity(openings[track], int(np.asarray(frames).sum()))
    aligned, gain = align_words(frames, pause, activity, config)
    return LipAlignment(aligned, track, gain)
