"""Griffin-Lim over a long mel in chunks: memory bounded, the seams where it is quiet.

Why: Griffin-Lim keeps several complex spectrograms of the whole mel (magnitude,
estimate, rebuilt, previous), ~140 MB for a 60 s clip, growing with the clip.
A mel longer than ``chunk_frames`` is vocoded chunk by chunk instead: each cut
goes at the quietest frame within a second of the ideal point (a word gap,
usually), each chunk is iterated with ``context`` frames of its neighbours
either side, starts from the phase the previous chunk ended with on the frames
they share (so the two agree where they meet), and the waves are crossfaded over
a few milliseconds at the cut. The whole wave is peak-limited once, as
:func:`dubops.audio.griffin_lim` does.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np
import torch

from dubops.audio import limit_peaks, mel_magnitude, phase_iterations, random_phase

if TYPE_CHECKING:
    from dubops.config import AudioConfig


def chunk_cuts(loudness: np.ndarray, chunk_frames: int, search: int) -> list[int]:
    """Frame indices where chunks start (the first is 0), at most ``chunk_frames``
    apart, each the quietest frame within ``search`` frames before its ideal point."""
    n = len(loudness)
    cuts = [0]
    while n - cuts[-1] > chunk_frames:
        ideal = cuts[-1] + chunk_frames
        low = max(cuts[-1] + 1, ideal - search)
        cuts.append(low + int(np.argmin(loudness[low : ideal + 1])))
    return cuts


def griffin_lim_in_chunks(
    mel: np.ndarray | torch.Tensor,
    config: AudioConfig,
    chunk_frames: int,
    context: int = 16,
    search: int = 94,
    fade: int = 256,
) -> np.ndarray:
    """``mel (n_mels, frames)`` -> the wave :func:`dubops.audio.griffin_lim` would give
    (the same length), made ``chunk_frames`` at a time."""
    mel_t = torch.as_tensor(mel, dtype=torch.float32)
    n, hop = mel_t.shape[1], config.hop_length
    cuts = chunk_cuts(mel_t.exp().sum(0).numpy(), chunk_frames, min(search, chunk_frames // 2))
    bounds = [*cuts, n]
    length = (n - 1) * hop
    wave = torch.zeros(length)
    previous, previous_first = None, 0  # the last chunk's final unit phase, its first frame
    for start, stop in itertools.pairwise(bounds):
        first, last = max(0, start - context), min(n, stop + context)
        magnitude = mel_magnitude(mel_t[:, first:last], config)
        phase = random_phase(tuple(magnitude.shape), seed=start)
        if previous is not None:  # the frames both chunks cover start where it ended
            shared = previous[:, first - previous_first :]
            phase[:, : shared.shape[1]] = shared
        piece, previous = phase_iterations(magnitude, phase, config)
        previous_first = first
        # The chunk's own samples, with a linear crossfade of ``fade`` either side of a cut.
        keep_from = start * hop - (fade if start > 0 else 0)
        keep_to = min(length, stop * hop + (fade if stop < n else 0))
        segment = piece[keep_from - first * hop : keep_to - first * hop]
        weight = torch.ones(len(segment))
        if start > 0:
            weight[: 2 * fade] = torch.linspace(0, 1, 2 * fade)
        if stop < n:
            weight[-2 * fade :] = torch.minimum(weight[-2 * fade :], torch.linspace(1, 0, 2 * fade))
        wave[keep_from : keep_from + len(segment)] += segment * weight
    return limit_peaks(wave).numpy().astype(np.float32)
