"""The mel front end and the weight-free Griffin-Lim vocoder."""

from __future__ import annotations

import numpy as np

from dubops.audio import MelFrontEnd, griffin_lim, limit_peaks, num_mel_frames, resample
from dubops.config import AudioConfig
from dubops.speech.espeak import EspeakSynthesizer, Prosody


def _speech() -> np.ndarray:
    utt = EspeakSynthesizer.shared().synthesize(
        "The blue book is on the table.", "en-us+m1", Prosody()
    )
    return resample(utt.samples.astype(np.float32) / 32768, utt.sample_rate, 24_000)


def test_mel_shape_follows_f5_convention():
    audio = AudioConfig()
    wave = _speech()
    mel = MelFrontEnd(audio)(wave)
    assert mel.shape == (100, num_mel_frames(len(wave), 256))
    assert float(mel.min()) >= np.log(1e-5) - 1e-4


def test_griffin_lim_copy_synthesis_keeps_the_mel():
    """Copy synthesis must come back close to the mel it started from (a broken
    inversion gave a mean log-mel error of 6.9; a working one gives ~0.35)."""
    audio = AudioConfig()
    front_end = MelFrontEnd(audio)
    wave = _speech()
    mel = front_end(wave).numpy()
    again = front_end(griffin_lim(mel, audio)).numpy()
    n = min(mel.shape[1], again.shape[1])
    assert np.abs(mel[:, :n] - again[:, :n]).mean() < 1.0


def test_limit_peaks_keeps_the_level_of_a_loud_wave_where_normalising_would_not():
    """Anger is ~4 dB louder than its speaker's calm prompt; dividing by the peak erased
    that (issue 23), bending only the peaks keeps it."""
    import torch

    wave = torch.from_numpy(_speech())
    quiet = 0.4 * wave / wave.abs().max()
    assert torch.equal(limit_peaks(quiet), quiet)  # below the knee: untouched
    loud = 3.0 * wave / wave.abs().max()
    limited = limit_peaks(loud)
    assert float(limited.abs().max()) <= 1.0
    assert torch.all(torch.sign(limited) == torch.sign(loud))

    def db(x: torch.Tensor) -> float:
        return float(20 * torch.log10(x.pow(2).mean().sqrt()))

    normalised = loud / loud.abs().max()
    assert db(loud) - db(limited) < 3.0 < db(loud) - db(normalised)
