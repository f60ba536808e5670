"""Request checks: prompt audio fixes and refusals, video slot length, script text."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch

from dubops.config import AudioConfig, DubOpsConfig
from dubops.speech.inputs import SpeechInputError, check_slot, prepare_prompt, slot_frames
from dubops.speech.text import PAUSE, ScriptError, merge_pauses, normalize_script, phonemize


def _tone(seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_prompt_is_resampled_and_mixed_down():
    stereo = np.stack([_tone(1.0, 22050), _tone(1.0, 22050)], axis=1)  # (t, 2) as soundfile
    out = prepare_prompt(stereo, 22050, 24000)
    assert out.dtype == np.float32 and out.ndim == 1 and len(out) == 24000
    channels_first = torch.from_numpy(stereo.T.copy())  # (2, t) as torch audio loaders give
    np.testing.assert_allclose(prepare_prompt(channels_first, 22050, 24000), out, atol=1e-6)
    pcm = (_tone(0.6, 24000) * 32767).astype(np.int16)
    assert np.abs(prepare_prompt(pcm, 24000, 24000)).max() == pytest.approx(0.3, abs=1e-3)


def test_prompt_refusals_name_the_field():
    with pytest.raises(
        SpeechInputError, match=r"prompt_wav: is 0\.40 s .* at least 0\.50 s"
    ) as err:
        prepare_prompt(_tone(0.4, 24000), 24000, 24000)
    assert err.value.field == "prompt_wav" and isinstance(err.value, ValueError)
    bad = _tone(1.0, 24000)
    bad[10] = np.nan
    with pytest.raises(SpeechInputError, match="NaN"):
        prepare_prompt(bad, 24000, 24000)


def test_slot_frames_and_check():
    audio = AudioConfig()
    assert slot_frames(1.0, audio) == 24000 // 256 + 1
    with pytest.raises(SpeechInputError, match="positive"):
        slot_frames(0.0, audio)
    check_slot(10, 20, audio.hop_length, audio.sample_rate)  # exactly enough
    with pytest.raises(SpeechInputError, match=r"slot is 0\.20 s .* at least 0\.21 s") as err:
        check_slot(10, 19, audio.hop_length, audio.sample_rate)
    assert err.value.field == "video"
    with pytest.raises(SpeechInputError, match="script"):
        check_slot(0, 19, audio.hop_length, audio.sample_rate)


def test_normalize_script_fixes_and_refuses(caplog):
    with caplog.at_level(logging.WARNING, logger="dubops.speech.text"):
        text = normalize_script("“Café”\u2014it’s  fine… ☺ *really*")
    assert text == '"Cafe" - it\'s fine... really'
    assert "WHITE SMILING FACE" in caplog.text and "'*'" in caplog.text
    for empty in ("", "   \n"):
        with pytest.raises(ScriptError, match="script is empty"):
            normalize_script(empty)
    with pytest.raises(ScriptError, match="`script`"):
        normalize_script("☺ ☺ !?")


def test_merge_pauses_sums_merged_durations():
    names, frames = merge_pauses(["_", "h", "_:", "_!", "i", "_"], [3, 2, 1, 4, 5, 0])
    assert names == [PAUSE, "h", PAUSE, "i", PAUSE]
    assert frames == [3, 2, 5, 5, 0]


def _clip_prosodies(corpus, clip_ids: list[str]):
    """The espeak settings each clip was made with, replayed from the corpus plan."""
    from dubops.data import scripts
    from dubops.data.speakers import emotion_prosody, speaker_by_id
    from dubops.data.synthetic import plan_corpus

    with open(corpus / "corpus.json") as f:
        saved = json.load(f)["config"]
    config = DubOpsConfig(**saved)
    specs = {s.clip_id: s for s in plan_corpus(config)}
    out = {}
    for clip_id in clip_ids:
        spec = specs[clip_id]
        # make_clip draws the script, the reaction line, then the prosody from this rng.
        rng = np.random.default_rng([config.synth.seed, 2, spec.index])
        script, _ = scripts.make_script(spec.emotion, config.synth.emotion_word_agreement, rng)
        scripts.make_react(spec.emotion, config.synth.emotion_word_agreement, rng)
        speaker = speaker_by_id(spec.speaker_id)
        out[clip_id] = (script, speaker.voice, emotion_prosody(speaker, spec.emotion, rng))
    return out


def test_phonemize_reproduces_corpus_phonemes(small_synthetic_corpus):
    corpus = small_synthetic_corpus
    manifest = pd.read_parquet(corpus / "manifest.parquet").iloc[::6]  # 8 clips, voices mixed
    replay = _clip_prosodies(corpus, list(manifest["clip_id"]))
    for row in manifest.itertuples():
        script, voice, prosody = replay[row.clip_id]
        assert script == row.script
        # Exact settings matter: rate and word gap move pauses and even change
        # espeak's reductions ("there" -> D 'e@ or D I r-).
        assert phonemize(row.script, voice, prosody) == list(row.phonemes), row.clip_id
