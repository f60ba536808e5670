"""Model-based evaluation metrics: ASR/WER, the emotion classifier, DNSMOS.

Everything runs offline: PocketSphinx and DNSMOS ship their models, the emotion
classifier is trained here on a 42-clip synthetic corpus.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dubops.audio import read_wav, resample
from dubops.config import load_config
from dubops.data.layout import CorpusLayout
from dubops.data.schema import EMOTIONS
from dubops.data.synthetic import generate_corpus
from dubops.evaluation.asr import build_recognizer, wer_of
from dubops.evaluation.emotion import (
    EmotionClassifier,
    classifier_version,
    load_or_train,
    train_emotion_classifier,
    utterance_features,
)
from dubops.evaluation.mos import dnsmos, set_dnsmos_threads
from dubops.evaluation.runner import select_clips
from dubops.speech.espeak import EspeakSynthesizer, Prosody

SR = 16_000
SENTENCE = "the ship sails at dawn tomorrow"
LM_TEXT = [SENTENCE, "where did you hide the golden key", "look at the sky"]


@pytest.fixture(scope="module")
def utterance() -> np.ndarray:
    utt = EspeakSynthesizer.shared().synthesize(SENTENCE, "en-us+m1", Prosody())
    return resample(utt.samples.astype(np.float32) / 32768.0, utt.sample_rate, SR)


def test_sphinx_corpus_lm_transcribes_a_known_sentence(utterance):
    recognizer = build_recognizer("sphinx", LM_TEXT)
    hypothesis = recognizer.transcribe(utterance)
    assert "corpus-lm" in recognizer.name
    assert wer_of([SENTENCE], [hypothesis]) == 0.0
    assert wer_of(["where did you hide the golden key"], [hypothesis]) > 0.5


def test_wer_ignores_case_and_punctuation():
    assert wer_of(["The ship, sails!"], ["the ship sails"]) == 0.0
    assert wer_of(["the ship sails"], ["the sheep sails"]) == pytest.approx(1 / 3)


def test_sphinx_general_and_bad_specs():
    assert "general-lm" in build_recognizer("sphinx-general").name
    with pytest.raises(ValueError, match="unknown recogniser"):
        build_recognizer("kaldi")


def test_whisper_missing_path_names_the_path(tmp_path):
    missing = tmp_path / "no-whisper-here"
    with pytest.raises(ValueError, match=str(missing)):
        build_recognizer(f"whisper:{missing}")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    config = load_config("tiny", overrides=["synth.clips=42", "synth.workers=1"])
    root = tmp_path_factory.mktemp("emo_corpus")
    generate_corpus(config, root)
    return root, config


def test_emotion_classifier_beats_chance_and_round_trips(corpus):
    root, _ = corpus
    classifier = train_emotion_classifier(root)
    directory = root / "evaluators" / "emotion" / classifier_version(root)
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["held_out_clips"] > 0
    assert meta["held_out_accuracy"] > 2 / len(EMOTIONS)  # chance is 1/7

    layout = CorpusLayout(root)
    row = pd.read_parquet(layout.manifest).iloc[0]
    wave, _ = read_wav(layout.resolve(row.audio_path), SR)
    prompt, _ = read_wav(layout.resolve(row.prompt_audio_path), SR)
    texts = (row.script, row.prompt_text)
    probs = classifier.predict_proba(wave, SR, prompt, *texts)
    assert probs.shape == (len(EMOTIONS),) and probs.sum() == pytest.approx(1.0)

    loaded = EmotionClassifier.load(directory)
    np.testing.assert_array_equal(loaded.predict_proba(wave, SR, prompt, *texts), probs)
    reused = load_or_train(root)  # the stored version, not a new run
    assert reused.directory == directory
    np.testing.assert_array_equal(reused.coef, classifier.coef)


def test_energy_and_pitch_features_match_the_corpus_reports(utterance):
    from dubops.data.report.prosody import pitch_energy_stats

    features = utterance_features(utterance, SR, len(SENTENCE.split()))
    np.testing.assert_allclose(features[:4], pitch_energy_stats(utterance, SR))
    assert 0 < features[4] <= 1  # loud share
    assert features[5] == pytest.approx(len(utterance) / SR / 6)


def test_select_clips_max_clips(corpus):
    root, _ = corpus
    every = select_clips(root, ("train", "val"))
    first = select_clips(root, ("train", "val"), max_clips=3)
    assert len(first) == 3 and list(first["clip_id"]) == list(every["clip_id"][:3])
    with pytest.raises(ValueError, match="max_clips"):
        select_clips(root, ("train",), max_clips=0)


def test_emotion_classifier_load_names_missing_model(tmp_path):
    with pytest.raises(ValueError, match="no emotion classifier"):
        EmotionClassifier.load(tmp_path)


def test_dnsmos_scores_speech_in_range(utterance):
    scores = dnsmos(utterance, SR)
    assert set(scores) == {"ovrl", "sig", "bak"}
    assert all(1.0 <= v <= 5.0 for v in scores.values())
    # Resampled input (24 kHz) is accepted too.
    assert 1.0 <= dnsmos(resample(utterance, SR, 24_000), 24_000)["ovrl"] <= 5.0


def test_thread_limited_dnsmos_equals_speechmos(utterance):
    from speechmos import dnsmos as speechmos_dnsmos

    reference = speechmos_dnsmos.run(np.clip(utterance, -1, 1), sr=SR)
    set_dnsmos_threads(1)
    try:
        scores = dnsmos(utterance, SR)
    finally:
        set_dnsmos_threads(0)
    # One intra-op thread sums in another order than speechmos's default session.
    assert scores == pytest.approx(
        {"ovrl": reference["ovrl_mos"], "sig": reference["sig_mos"], "bak": reference["bak_mos"]},
        rel=1e-6,
    )
