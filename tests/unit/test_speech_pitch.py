"""The pitch head's targets, loss and contour, and the harmonic comb that voices a smooth mel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dubops.audio import MelFrontEnd, mel_filters
from dubops.config import AudioConfig
from dubops.speech.harmonics import hann_lobe, harmonic_comb, voice_mel
from dubops.speech.pitch import (
    contour,
    frame_phonemes,
    loudness,
    loudness_reference,
    pitch_loss,
    relevel,
)
from dubops.speech.pitch_targets import f0_track
from tests.fixtures.random_generator import CONCLUSION, random_generator, sine_prompt

AUDIO = AudioConfig()


def test_the_comb_is_the_window_lobes_of_every_harmonic_through_the_mel_filters():
    filters = mel_filters(AUDIO)
    f0 = np.array([0.0, 100.0, 231.0])
    comb = harmonic_comb(f0, AUDIO, filters)
    assert comb.shape == (AUDIO.n_mels, 3)
    assert np.all(comb[:, 0] == 0)  # unvoiced: unchanged
    # Brute force for one frame: every harmonic's lobe at every FFT bin.
    bin_hz = AUDIO.sample_rate / AUDIO.n_fft
    freqs = np.arange(filters.shape[1]) * bin_hz
    harmonics = np.arange(1, int(freqs[-1] // 231.0) + 1) * 231.0
    spectrum = hann_lobe((freqs[:, None] - harmonics[None]) / bin_hz).sum(axis=1)
    area = hann_lobe(np.arange(-4, 4.001, 1 / 64)).sum() / 64
    ratio = (filters @ spectrum) / (area * bin_hz / 231.0 * filters.sum(axis=1))
    assert np.allclose(comb[:, 2], np.log(np.maximum(ratio, 1e-3)), atol=1e-5)
    # Narrow low bands get peaks and valleys; wide high bands average out.
    assert comb[:20, 1].std() > 0.5 and np.abs(comb[-30:, 1]).max() < 0.1


def test_the_comb_puts_back_the_harmonics_a_smooth_mel_lost():
    from scipy.ndimage import gaussian_filter1d

    rate, f0 = AUDIO.sample_rate, 120.0
    t = np.arange(rate) / rate
    wave = sum(np.sin(2 * np.pi * k * f0 * t) for k in range(1, 60)).astype(np.float32)
    mel = MelFrontEnd(AUDIO)(0.02 * wave)[:, 10:-10]  # away from the padded edges
    smooth = torch.from_numpy(gaussian_filter1d(mel.numpy(), 2.0, axis=0))
    voiced = voice_mel(smooth, np.full(mel.shape[1], f0), AUDIO)
    low = slice(0, 30)  # the bands narrow enough to resolve 120 Hz harmonics
    lost = (mel - smooth)[low].flatten()
    added = (voiced - smooth)[low].flatten()
    assert float(torch.corrcoef(torch.stack([lost, added]))[0, 1]) > 0.6


def test_the_envelope_lets_a_low_comb_be_heard_over_harmonics_drawn_at_another_pitch():
    """A mel whose own harmonics sit at 200 Hz, combed at 75 Hz (a sad low voice): YIN
    hears the mel's pitch unless the voiced frames are first reduced to their envelope."""
    from dubops.audio import griffin_lim, resample
    from dubops.speech.harmonics import spectral_envelope

    rate = AUDIO.sample_rate
    t = np.arange(rate) / rate
    wave = sum(np.sin(2 * np.pi * k * 200.0 * t) / k for k in range(1, 40)).astype(np.float32)
    mel = MelFrontEnd(AUDIO)(0.05 * wave)

    def heard(envelope_bins: float) -> float:
        voiced = voice_mel(mel, np.full(mel.shape[1], 75.0), AUDIO, 1.0, envelope_bins)
        f0 = f0_track(resample(griffin_lim(voiced, AUDIO), rate, 16_000))
        return float(np.median(f0[f0 > 0]))

    assert abs(np.log2(heard(0.0) / 200.0)) < 0.1  # the mel's own pitch wins
    assert abs(np.log2(heard(2.0) / 75.0)) < 0.1
    # Only the voiced frames change, and 0 keeps the mel.
    frames = np.array([3, 4, 5])
    smooth = spectral_envelope(mel, frames, 2.0)
    untouched = np.setdiff1d(np.arange(mel.shape[1]), frames)
    assert torch.equal(smooth[:, untouched], mel[:, untouched])
    # The harmonic peaks across the low bands: their curvature from band to band.
    assert smooth[:30, 4].diff(n=2).abs().mean() < 0.5 * mel[:30, 4].diff(n=2).abs().mean()
    assert torch.equal(spectral_envelope(mel, frames, 0.0), mel)


def test_frame_phonemes_repeat_each_id_for_its_frames():
    ids = frame_phonemes(torch.tensor([[5, 6, 7]]), torch.tensor([[2, 0, 3]]), 7)
    assert ids.tolist() == [[5, 5, 7, 7, 7, 0, 0]]


def test_pitch_loss_is_zero_at_the_targets_and_counts_only_masked_frames():
    f0 = torch.tensor([[100.0, 0.0, 200.0, 150.0]])
    reference = torch.tensor([np.log(100.0)], dtype=torch.float32)
    level = torch.tensor([[1.0, -2.0, 0.5, 9.0]])
    mask = torch.tensor([[True, True, True, False]])
    delta = torch.log(f0.clamp(min=1)) - reference
    voiced = torch.tensor([[50.0, -50.0, 50.0, 0.0]])
    exact = pitch_loss(
        (delta, voiced, level - 0.5), f0, reference, level, torch.tensor([0.5]), mask
    )
    assert float(exact) < 1e-6  # the unmasked last frame's errors do not count
    off = pitch_loss((delta + 0.1, voiced, level), f0, reference, level, torch.tensor([0.5]), mask)
    assert float(off) == pytest.approx(0.01 + 0.25, rel=1e-4)


def test_contour_is_relative_to_the_prompt_and_drops_unvoiced_runs():
    delta = torch.zeros(12)
    logit = torch.full((12,), 5.0)
    logit[4:9] = -5.0
    logit[1] = -5.0  # a one-frame dip: smoothed over
    f0 = contour(delta, logit, float(np.log(180.0)), 0.5)
    assert np.allclose(f0[[0, 1, 2, 10, 11]], 180.0) and np.all(f0[5:8] == 0)


def test_contour_scale_widens_the_voiced_movement_around_its_mean_and_keeps_the_mean():
    delta = torch.linspace(-0.2, 0.2, 40)
    logit = torch.full((40,), 5.0)
    logit[:10] = -5.0  # unvoiced: no F0, and not part of the mean
    base = float(np.log(150.0))
    plain = contour(delta, logit, base, 0.5, smooth_frames=1)
    wide = contour(delta, logit, base, 0.5, smooth_frames=1, scale=1.5)
    voiced = plain > 0
    assert np.array_equal(voiced, wide > 0) and not voiced[:10].any()
    log_plain, log_wide = np.log(plain[voiced]), np.log(wide[voiced])
    assert log_wide.mean() == pytest.approx(log_plain.mean())
    assert log_wide.std() == pytest.approx(1.5 * log_plain.std())


def test_relevel_moves_speech_frames_to_the_predicted_loudness_and_keeps_silence():
    mel = torch.zeros(20, 8)
    mel[15:] = -8.0  # silence
    out = relevel(mel, torch.full((20,), 1.5), prompt_level=-1.0, strength=1.0)
    assert torch.allclose(loudness(out[:13]), torch.full((13,), 0.5), atol=1e-5)
    assert torch.equal(out[16:], mel[16:])
    assert loudness_reference(mel) == pytest.approx(np.log(8))  # 8 bins of magnitude 1


def test_a_generator_with_a_pitch_head_voices_its_speech_from_the_prompt():
    plain = random_generator("speech.pitch.enabled=false")
    pitched = random_generator("speech.pitch.enabled=true")
    assert plain.model.pitch is None and pitched.model.pitch is not None
    args = ("hello there", sine_prompt(), 24_000)
    kwargs = {"target_seconds": 1.0, "conclusion": CONCLUSION}
    plan = pitched.prepare(*args, **kwargs)
    assert plan.prompt_logf0 == pytest.approx(np.log(180.0), abs=0.05)
    assert plain.prepare(*args, **kwargs).prompt_logf0 is None
    voiced = pitched.sample([plan])[0]
    pitched.speech.pitch.strength = 0.0
    pitched.speech.pitch.loudness_strength = 0.0
    unvoiced = pitched.sample([pitched.prepare(*args, **kwargs)])[0]
    assert voiced.shape == unvoiced.shape and not torch.allclose(voiced, unvoiced)


def test_loud_steady_frames_pyin_calls_unvoiced_take_yins_f0(monkeypatch):
    """pYIN's voicing leaves a third to a half of some corpus voices unvoiced; the
    targets then take YIN's F0 on loud frames within half an octave of the median."""
    import librosa

    rate = 16_000
    t = np.arange(rate) / rate
    tone = sum(np.sin(2 * np.pi * 150.0 * k * t) / k for k in range(1, 6))
    wave = np.concatenate([tone, np.zeros(rate // 2)]).astype(np.float32) * 0.3
    honest = f0_track(wave)
    monkeypatch.setattr(
        librosa,
        "pyin",
        lambda x, **kw: (np.full(len(honest), np.nan), np.zeros(len(honest), bool), None),
    )
    filled = f0_track(wave)
    middle = slice(5, 45)  # 0.1-0.9 s: inside the tone
    assert np.allclose(filled[middle], 150.0, rtol=0.03)
    assert np.allclose(honest[middle], 150.0, rtol=0.03)
    assert np.all(filled[-15:] == 0)  # the silence stays unvoiced


class _HalfContourHead(torch.nn.Module):
    """A head whose log-F0 moves half as far as the clip's target: flattened by 2."""

    def __init__(self, target_delta: torch.Tensor):
        super().__init__()
        self.target_delta = target_delta

    def forward(self, condition, phonemes):
        n = condition.shape[1]
        delta = 0.5 * self.target_delta[:n]
        return delta[None], torch.full((1, n), 5.0), torch.zeros(1, n)


def test_contour_spread_measures_how_much_flatter_the_served_contour_is():
    from dubops.speech.pitch_refine import contour_spread
    from dubops.speech.settings import PitchConfig

    n = 300
    target_delta = 0.2 * torch.sin(torch.arange(n) * 2 * np.pi / 100)
    f0 = torch.from_numpy(np.exp(np.log(120.0) + target_delta.numpy()))
    clip = {
        "condition": torch.zeros(n, 4),
        "phonemes": torch.zeros(n, dtype=torch.long),
        "f0": f0,
        "prompt_logf0": torch.tensor(float(np.log(120.0))),
    }
    config = PitchConfig(enabled=True)
    spread = contour_spread(_HalfContourHead(target_delta), [clip], config)
    assert spread == pytest.approx(2.0, rel=0.03)
    # A clip with too few voiced frames is left out; none left: no correction.
    assert contour_spread(_HalfContourHead(target_delta), [{**clip, "f0": f0 * 0}], config) == 1.0
