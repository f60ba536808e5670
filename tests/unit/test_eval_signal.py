"""Signal metrics of dubops.evaluation on a few espeak utterances synthesised here."""

from __future__ import annotations

import numpy as np
import pytest

from dubops.audio import resample, speech_envelope
from dubops.config import AudioConfig
from dubops.data.cartoon import Character, render_clip
from dubops.evaluation.duration import duration_fit
from dubops.evaluation.lipsync import av_sync, clip_sync, track_talker_mouth
from dubops.evaluation.mcd import mcd_dtw, mcd_pair, mel_cepstrum
from dubops.evaluation.speaker import SpeakerEncoder, speaker_similarity
from dubops.speech.espeak import EspeakSynthesizer, Prosody

SR = 24_000
FPS = 25
AUDIO = AudioConfig()


def _speak(text: str, voice: str, rate: int = 175) -> np.ndarray:
    utt = EspeakSynthesizer.shared().synthesize(text, voice, Prosody(rate=rate))
    return resample(utt.samples.astype(np.float32) / 32768.0, utt.sample_rate, SR)


@pytest.fixture(scope="module")
def waves() -> dict[str, np.ndarray]:
    return {
        "m1_a": _speak("The ship sails at dawn tomorrow.", "en-us+m1"),
        "m1_b": _speak("Where did you hide the golden key?", "en-us+m1"),
        "m1_slow": _speak("The ship sails at dawn tomorrow.", "en-us+m1", rate=110),
        "grandma_b": _speak("Where did you hide the golden key?", "en+grandma"),
    }


def test_mel_cepstrum_shape(waves):
    cep = mel_cepstrum(waves["m1_a"], SR, AUDIO)
    assert cep.shape == (len(waves["m1_a"]) // AUDIO.hop_length + 1, 24)


def test_identical_audio_has_zero_mcd(waves):
    assert mcd_dtw(waves["m1_a"], waves["m1_a"], SR, AUDIO) < 1e-6


def test_length_penalty_applies_when_lengths_differ(waves):
    out = mcd_pair(waves["m1_a"], waves["m1_slow"], SR, AUDIO)
    assert out["gen_frames"] > 1.3 * out["ref_frames"]
    assert out["mcd_dtw"] > 0
    ratio = out["gen_frames"] / out["ref_frames"]
    assert out["mcd_dtw_sl"] == pytest.approx(out["mcd_dtw"] * ratio)
    assert out["mcd_dtw_sl"] > out["mcd_dtw"]
    # A different sentence is further away than the same one at another rate.
    other = mcd_dtw(waves["m1_a"], waves["m1_b"], SR, AUDIO)
    assert other > out["mcd_dtw"]


def test_speaker_similarity_separates_speakers(waves):
    enc = SpeakerEncoder()
    a, b, g = (enc.embed(waves[k], SR) for k in ("m1_a", "m1_b", "grandma_b"))
    assert a.shape == (256,)
    assert speaker_similarity(a, a) > 99
    same, different = speaker_similarity(a, b), speaker_similarity(a, g)
    assert same - different > 10, (same, different)


def test_envelope_shift_moves_offset_by_exactly_the_shift(waves):
    env = speech_envelope(waves["m1_b"], SR, FPS)
    mouth = env / env.max()
    aligned = av_sync(mouth, env, max_lag=10)
    assert aligned.offset_frames == 0 and aligned.distance < 1e-9
    # Audio 5 frames late (silence prepended): positive offset, by convention.
    late = av_sync(mouth, np.concatenate([np.zeros(5), env])[: len(env)], max_lag=10)
    early = av_sync(mouth, np.concatenate([env[5:], np.zeros(5)]), max_lag=10)
    assert late.offset_frames == 5 and early.offset_frames == -5
    assert late.confidence > 0.3


def test_clip_sync_on_a_rendered_cartoon(waves):
    wave = waves["m1_b"]
    env = speech_envelope(wave, SR, FPS)
    chars = [Character("female", "adult", "joy", False), Character("male", "adult", "joy", True)]
    frames = render_clip(chars, "joy", env / env.max(), 96, np.random.default_rng(0))
    synced = clip_sync(frames, 2, 1, wave, SR, FPS)
    assert synced is not None and synced.offset_frames == 0
    hop = SR // FPS
    late = clip_sync(frames, 2, 1, np.concatenate([np.zeros(3 * hop), wave]), SR, FPS)
    assert late is not None and late.offset_frames == 3
    silent = clip_sync(frames, 2, 0, wave, SR, FPS)
    assert silent is not None and silent.distance > synced.distance
    assert clip_sync(frames, 2, -1, wave, SR, FPS) is None


def test_cartoon_track_boxes_the_talkers_head(waves):
    env = speech_envelope(waves["m1_b"], SR, FPS)
    chars = [Character("female", "adult", "joy", False), Character("male", "adult", "joy", True)]
    frames = render_clip(chars, "joy", env / env.max(), 96, np.random.default_rng(0))
    track = track_talker_mouth(frames, 2, 1)
    assert track.reason is None and track.opening.shape == (len(frames),)
    x0, y0, x1, y1 = track.boxes[0]
    assert track.boxes.shape == (len(frames), 4) and 48 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 96
    # The head is the box's face-coloured part; the drawn mouth sits inside the box.
    assert y0 < 0.38 * 96 < y1 and abs((x0 + x1) / 2 - 72) < 1
    assert track_talker_mouth(frames, 2, -1).opening is None


def test_duration_fit_arithmetic():
    assert duration_fit(2.5, 2.0) == pytest.approx({"abs_error_s": 0.5, "rel_error": 0.25})
    assert duration_fit(1.5, 2.0) == pytest.approx({"abs_error_s": 0.5, "rel_error": 0.25})
    with pytest.raises(ValueError):
        duration_fit(1.0, 0.0)
