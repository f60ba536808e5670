"""Voicing a smooth mel: the harmonic comb of an F0 contour, laid over the mel in the log domain.

Why: the tiny DiT learns the spectral envelope (formants, so the words are
intelligible) long before the harmonics; its mels are smooth across frequency,
so any vocoder renders them as whisper, with no pitch at all (pYIN finds no
voiced frame in its output, where it finds 66-91 % in the ground truth), and
the pitch half of an emotion is lost whatever the conditions say (issue 23).
A source-filter view fixes that without a larger model: the mel is the
envelope, the F0 contour (:mod:`dubops.speech.pitch`) is the source, and the
mel of a harmonic source at F0 through the front end's own window and filters,
divided by the mel of a flat source of the same power, is the comb to add.
Bands wider than a few harmonics average out to a ratio of 1 and are left as
they were; the low bands get their harmonic peaks and valleys back.
"""

from __future__ import annotations

import numpy as np
import torch

from dubops.config import AudioConfig


def hann_lobe(offset_bins: np.ndarray) -> np.ndarray:
    """|DTFT| of a Hann window at ``offset_bins`` FFT bins from its centre, 1 at 0.

    Hann = 0.5 rect + 0.25 shifted rects: a sinc divided by ``1 - x**2``; zero
    beyond its 2-bin main lobe's nulls at 2, 3, ... only approximately, so it is
    cut at 4 bins (the side lobes are 30 dB down).
    """
    x = np.asarray(offset_bins, dtype=np.float64)
    out = np.abs(np.sinc(x) / np.where(np.abs(np.abs(x) - 1) < 1e-9, 1.0, 1 - x**2))
    out = np.where(np.abs(np.abs(x) - 1) < 1e-9, 0.5, out)
    return np.where(np.abs(x) < 4, out, 0.0)


def harmonic_comb(f0: np.ndarray, audio: AudioConfig, filters: np.ndarray) -> np.ndarray:
    """``(m, n)``: log ratio of a harmonic source at ``f0`` to a flat one of the same power.

    ``f0`` is Hz per frame, 0 where unvoiced.
    ``filters`` are the front end's ``(m, n_fft // 2 + 1)`` mel filters. Each
    harmonic adds its window lobe to the 9 FFT bins around it; unvoiced frames
    get 0 (no change).
    """
    f0 = np.asarray(f0, dtype=np.float64)
    bins = filters.shape[1]
    bin_hz = audio.sample_rate / audio.n_fft
    out = np.zeros((filters.shape[0], len(f0)), dtype=np.float32)
    frames = np.flatnonzero(f0 > 0)
    if len(frames) == 0:
        return out
    top = (bins - 1) * bin_hz
    counts = np.floor(top / f0[frames]).astype(int)
    frame_of = np.repeat(np.arange(len(frames)), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + 1
    position = k * f0[frames][frame_of] / bin_hz  # in FFT bins
    spectrum = np.zeros((len(frames), bins))
    for step in range(-4, 5):
        index = np.floor(position).astype(int) + step
        inside = (index >= 0) & (index < bins)
        np.add.at(
            spectrum,
            (frame_of[inside], index[inside]),
            hann_lobe(index[inside] - position[inside]),
        )
    # A flat source of the same power: one lobe's area per f0 / bin_hz bins.
    lobe_area = hann_lobe(np.arange(-4, 4.001, 1 / 64)).sum() / 64
    flat = lobe_area * bin_hz / f0[frames]
    ratio = (spectrum @ filters.T) / np.maximum(flat[:, None] * filters.sum(axis=1)[None], 1e-12)
    out[:, frames] = np.log(np.maximum(ratio, 1e-3)).T
    return out


def spectral_envelope(mel: torch.Tensor, frames: np.ndarray, bins: float) -> torch.Tensor:
    """``mel (m, n)`` with ``frames`` smoothed across frequency (Gaussian SD ``bins``).

    Why: the DiT draws some harmonics of its own, at a pitch of its choosing
    (without the comb, YIN reads the tiny model's low voices 0.6-1.1 octave above
    the head's F0). Where the head asks for a very low voice (a sad 70 Hz male),
    the comb's few resolved low-band peaks lose to them and the rendered pitch
    jumps by octaves. Smoothing the voiced frames' mel magnitudes first keeps
    the envelope (formants) and removes those harmonics; the edge bands repeat.
    """
    if bins <= 0 or len(frames) == 0:
        return mel
    reach = max(1, int(np.ceil(3 * bins)))
    taps = torch.exp(-0.5 * (torch.arange(-reach, reach + 1, dtype=mel.dtype) / bins) ** 2)
    taps = (taps / taps.sum()).view(1, 1, -1)
    index = torch.as_tensor(frames, dtype=torch.long)
    linear = torch.exp(mel[:, index]).T.unsqueeze(1)  # (voiced frames, 1, m)
    padded = torch.nn.functional.pad(linear, (reach, reach), mode="replicate")
    smooth = torch.nn.functional.conv1d(padded, taps)[:, 0].T
    out = mel.clone()
    out[:, index] = torch.log(smooth.clamp(min=1e-5))
    return out


def voice_mel(
    mel: torch.Tensor,
    f0: np.ndarray,
    audio: AudioConfig,
    strength: float = 1.0,
    envelope_bins: float = 0.0,
) -> torch.Tensor:
    """``mel (m, n)`` with the comb of ``f0 (n,)`` added (``strength`` scales the log ratio);
    with ``envelope_bins``, the voiced frames are first reduced to their envelope."""
    from dubops.audio import mel_filters

    mel = spectral_envelope(mel, np.flatnonzero(np.asarray(f0) > 0), envelope_bins)
    comb = torch.from_numpy(harmonic_comb(f0, audio, mel_filters(audio))).to(mel)
    return mel + strength * comb
