"""The scene's track: each dubbed line in its slot, silence between, the video's length.

A line is cut to its slot (the generator fills the slot it is given, give or
take a hop) with a short fade where anything was cut, so no line can spill into
the next one and the track is exactly as long as the video.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# A cut mid-sample clicks; 10 ms is below what a listener hears as a fade.
FADE_SECONDS = 0.01


def slot_samples(start: float, end: float, sample_rate: int) -> tuple[int, int]:
    """A slot's first sample and its end (exclusive): rounded, so touching slots touch."""
    return round(start * sample_rate), round(end * sample_rate)


def assemble_track(
    lines: Sequence[tuple[float, float, np.ndarray]], seconds: float, sample_rate: int
) -> np.ndarray:
    """One float32 track of ``seconds`` with each ``(start, end, wave)`` in its slot."""
    track = np.zeros(round(seconds * sample_rate), dtype=np.float32)
    for start, end, wave in lines:
        first, stop = slot_samples(start, end, sample_rate)
        stop = min(stop, len(track))
        piece = np.asarray(wave, dtype=np.float32)[: stop - first]
        if len(wave) > stop - first:
            fade = min(len(piece), round(FADE_SECONDS * sample_rate))
            piece = piece.copy()
            piece[len(piece) - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        track[first : first + len(piece)] = piece
    return track
