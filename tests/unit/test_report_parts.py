"""Each learnability measurement on a handful of utterances synthesised here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dubops.audio import resample
from dubops.data.report.classify import evaluate_classifier
from dubops.data.report.clips import REPORT_SAMPLE_RATE, select_clips
from dubops.data.report.frames import count_blobs
from dubops.data.report.lipsync import best_lag, clip_correlations, pearson
from dubops.data.report.prosody import (
    classify_emotion,
    normalise_per_speaker,
    pitch_energy_stats,
    timing_stats,
)
from dubops.data.report.scene import scene_features
from dubops.data.report.table import format_report
from dubops.data.report.wer import (
    SphinxRecognizer,
    normalise_text,
    vocabulary,
    word_error_rate,
)

VOICES = ("en-us+m1", "en+f4", "en-gb-scotland+m2")
TEXTS = (
    "the quick brown fox jumps over the lazy dog",
    "we should go home before it gets dark",
    "please leave the door open for the cat",
    "what a wonderful surprise this is",
)


def _speak(text: str, voice: str, **prosody) -> np.ndarray:
    from dubops.speech.espeak import EspeakSynthesizer, Prosody

    utt = EspeakSynthesizer.shared().synthesize(text, voice, Prosody(**prosody))
    return resample(utt.samples.astype(np.float32) / 32768.0, utt.sample_rate, REPORT_SAMPLE_RATE)


@pytest.fixture(scope="module")
def utterances() -> list[tuple[str, str, np.ndarray]]:
    """``(voice, text, 16 kHz wave)`` for 3 voices x 4 sentences."""
    return [(v, t, _speak(t, v)) for v in VOICES for t in TEXTS]


def test_speaker_id_is_near_perfect_on_distinct_voices(utterances):
    from dubops.data.report.speakers import embed_waves, nearest_centroid_accuracy

    embeddings = embed_waves([w for _, _, w in utterances])
    ids = [f"{v}-{i}" for i, (v, _, _) in enumerate(utterances)]
    result = nearest_centroid_accuracy(embeddings, [v for v, _, _ in utterances], ids)
    assert result["speakers"] == 3
    assert result["enrol_clips"] + result["test_clips"] == len(utterances)
    assert result["accuracy"] >= 0.83  # at most one of six test clips wrong


def test_wer_with_grammar_is_reasonably_low(utterances):
    chosen = [u for u in utterances if u[0] == VOICES[0]]
    recognizer = SphinxRecognizer(list(TEXTS))
    assert recognizer.mode == "corpus-lm"
    hypotheses = [recognizer.transcribe(w) for _, _, w in chosen]
    # The corpus LM reaches ~0.24 on the tiny corpus; a word salad would be ~1.
    assert word_error_rate([t for _, t, _ in chosen], hypotheses) < 0.7


def test_wer_text_helpers():
    assert normalise_text("Don't STOP, now!") == "dont stop now"
    assert vocabulary(["Don't stop.", "stop now"]) == ["don't", "now", "stop"]
    assert word_error_rate(["Hello, world."], ["hello world"]) == 0.0


def test_pearson_of_self_noise_and_constant():
    rng = np.random.default_rng(0)
    x = rng.random(500)
    assert pearson(x, x) == pytest.approx(1.0)
    assert abs(pearson(x, rng.random(500))) < 0.15
    assert pearson(x, np.ones(500)) == 0.0


def test_clip_correlations_split_talker_and_silent(utterances):
    from dubops.audio import speech_envelope

    env = speech_envelope(utterances[0][2], REPORT_SAMPLE_RATE, 25)
    talker = (env / env.max()) ** 0.7  # how the synthetic corpus drives the mouth
    mouths = np.stack([np.full_like(env, 0.2), talker, np.random.default_rng(1).random(len(env))])
    talkers, silent = clip_correlations(mouths, env[:-1], talker_index=1)  # lengths may differ
    assert talkers[0] > 0.9
    assert silent[0] == 0.0 and abs(silent[1]) < 0.4
    assert best_lag(np.roll(talker, 2), env) == 2


def test_pitch_energy_and_timing_stats():
    low = pitch_energy_stats(_speak(TEXTS[0], VOICES[0], pitch=20), REPORT_SAMPLE_RATE)
    high = pitch_energy_stats(_speak(TEXTS[0], VOICES[0], pitch=80), REPORT_SAMPLE_RATE)
    assert np.all(np.isfinite(low)) and high[0] > low[0] + 0.2  # log-F0 mean rises
    per_phoneme, pause_ratio = timing_stats(["_", "a", "b", "_"], [2, 3, 3, 2], seconds=2.0)
    assert per_phoneme == 0.5 and pause_ratio == 0.4


def test_emotion_needs_per_speaker_normalisation():
    # Two emotions as +-1 offsets on speaker baselines 10 apart: raw features
    # separate speakers, z-scored ones separate emotions.
    rng = np.random.default_rng(0)
    speakers = np.repeat([f"s{i}" for i in range(6)], 10)
    emotions = np.tile(["anger", "sadness"], 30)
    base = np.repeat(np.arange(6) * 10.0, 10)[:, None]
    offset = np.where(emotions == "anger", 1.0, -1.0)[:, None]
    features = base + offset + 0.3 * rng.standard_normal((60, 2))
    z = normalise_per_speaker(features, list(speakers))
    assert np.allclose(z[speakers == "s0"].mean(0), 0.0)
    splits = ["train"] * 40 + ["test_s1"] * 20
    result = classify_emotion(features, list(emotions), list(speakers), splits)
    assert result["method"] == "held_out" and result["accuracy"] >= 0.95
    assert result["accuracy_unnormalised"] < result["accuracy"]


def test_classifier_falls_back_to_cross_validation():
    from sklearn.linear_model import LogisticRegression

    x = np.r_[np.zeros(10), np.ones(10)][:, None] + 0.01
    result = evaluate_classifier(x, ["a"] * 10 + ["b"] * 10, ["train"] * 20, LogisticRegression)
    assert result["method"] == "cv5" and result["accuracy"] == 1.0


def test_blob_count_and_scene_features():
    frame = np.full((96, 96, 3), (40, 90, 200), dtype=np.uint8)
    frame[30:70, 10:35] = (230, 200, 160)
    frame[30:70, 60:85] = (230, 200, 160)
    frame[60:64, 18:28] = (20, 20, 20)  # a mouth inside the first face stays one blob
    assert count_blobs(frame) == 2
    mouths = np.stack([np.zeros(20), np.tile([0.0, 1.0], 10)])
    features = scene_features(2, mouths)
    assert features[0] == 2 and features[1] > 0 and features[2] == 0  # mover first


def test_select_clips_puts_held_out_first_and_caps():
    splits = ["train"] * 30 + ["val"] * 5 + ["test_s1"] * 5
    manifest = pd.DataFrame({"clip_id": [f"c{i}" for i in range(40)], "split": splits})
    chosen = select_clips(manifest, 20)
    assert len(chosen) == 20 and (chosen["split"] != "train").sum() == 10
    assert list(chosen["split"][:10]) != ["train"] * 10
    assert select_clips(manifest, 20).equals(chosen)


def test_format_report_marks_targets():
    text = format_report(
        {
            "corpus": "x",
            "clips": 3,
            "speaker_id_accuracy": 0.97,
            "mouth_env_corr_silent": 0.5,
            "wer": None,
            "seconds": {"total": 1.0},
        }
    )
    assert "0.970" in text and "ok" in text and "MISS" in text and "n/a" in text


def test_corpus_lm_is_valid_arpa(tmp_path):
    from dubops.data.report.corpus_lm import write_bigram_arpa

    path = write_bigram_arpa(["a b", "a c"], tmp_path / "lm.arpa")
    text = path.read_text()
    assert "ngram 1=5" in text and "ngram 2=5" in text
    assert "-0.30103 a b" in text  # P(b | a) = 1/2
    assert text.rstrip().endswith("\\end\\")
