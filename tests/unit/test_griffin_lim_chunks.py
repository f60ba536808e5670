"""Griffin-Lim in chunks: the same length and fidelity as in one piece, cuts where it is quiet."""

from __future__ import annotations

import numpy as np
import torch

from dubops.audio import MelFrontEnd, griffin_lim, resample
from dubops.config import AudioConfig
from dubops.speech.espeak import EspeakSynthesizer, Prosody
from dubops.speech.griffin_lim_chunks import chunk_cuts, griffin_lim_in_chunks
from dubops.speech.vocoder import GriffinLimVocoder


def test_cuts_are_the_quietest_frames_before_each_ideal_point():
    loudness = np.ones(1000)
    loudness[[180, 370, 560, 950]] = 0.0
    # Past 560 no quiet frame is in reach: the first of the search window, 40 before.
    assert chunk_cuts(loudness, 200, 40) == [0, 180, 370, 560, 720, 880]
    assert chunk_cuts(loudness, 2000, 40) == [0]


def _long_speech() -> np.ndarray:
    lines = ["The blue book is on the table.", "We waited for the last train home."]
    parts = []
    for i in range(4):
        utt = EspeakSynthesizer.shared().synthesize(lines[i % 2], "en-us+m1", Prosody())
        parts.append(resample(utt.samples.astype(np.float32) / 32768, utt.sample_rate, 24_000))
        parts.append(np.zeros(2_400, dtype=np.float32))
    return np.concatenate(parts)


def test_chunks_give_the_same_length_and_as_close_a_mel_as_one_piece():
    audio = AudioConfig(griffin_lim_iters=8)
    front_end = MelFrontEnd(audio)
    mel = front_end(_long_speech()).numpy()
    assert mel.shape[1] > 3 * 150
    whole = griffin_lim(mel, audio)
    chunked = griffin_lim_in_chunks(mel, audio, chunk_frames=150)
    assert chunked.shape == whole.shape and np.isfinite(chunked).all()

    def error(wave: np.ndarray) -> float:
        again = front_end(wave).numpy()
        n = min(mel.shape[1], again.shape[1])
        return float(np.abs(mel[:, :n] - again[:, :n]).mean())

    assert error(chunked) < error(whole) + 0.1
    # The vocoder takes the chunked path past its chunk length.
    short = AudioConfig(griffin_lim_iters=8, griffin_lim_chunk_frames=150)
    wave = GriffinLimVocoder(short).decode(torch.from_numpy(mel))
    assert wave.shape[-1] == whole.shape[0]
