"""The corpus plan, scripts, CoT and phoneme durations (no media written)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter

import numpy as np
import pytest

from dubops.config import ConfigError, load_config
from dubops.data import cot, scripts
from dubops.data.schema import EMOTIONS, REJECTED_KINDS, SCENE_TYPES
from dubops.data.synthetic import _phoneme_frames, corpus_fingerprint, plan_corpus


def _config(**synth):
    return load_config("tiny", overrides=[f"synth.{k}={v}" for k, v in synth.items()])


def test_plan_is_deterministic_and_balanced():
    config = _config(clips=84)
    a, b = plan_corpus(config), plan_corpus(config)
    assert a == b
    emotions = Counter(s.emotion for s in a)
    assert set(emotions) == set(EMOTIONS)
    assert max(emotions.values()) - min(emotions.values()) <= 1
    scenes = Counter(s.scene_type for s in a)
    assert set(scenes) == set(SCENE_TYPES)
    assert plan_corpus(_config(clips=84, seed=1)) != a


def test_plan_scene_rules_hold():
    for spec in plan_corpus(_config(clips=120)):
        talkers = [i for i, p in enumerate(spec.people) if p.talking]
        if spec.scene_type == "dialogue":
            assert len(spec.people) in (2, 3) and talkers == [spec.talker_index]
        elif spec.scene_type == "monologue":
            assert len(spec.people) == 1 and spec.talker_index == 0
        else:
            assert len(spec.people) <= 2 and not talkers and spec.talker_index == -1


def test_setting2_speakers_never_in_training():
    specs = plan_corpus(_config(clips=240))
    unseen = {s.speaker_id for s in specs if s.split == "test_s2"}
    seen = {s.speaker_id for s in specs if s.split in ("train", "val", "test_s1")}
    assert len(unseen) == 2
    assert not unseen & seen
    assert {s.split for s in specs} == {"train", "val", "test_s1", "test_s2"}


def test_bad_settings_name_the_field():
    with pytest.raises(ConfigError, match=r"synth\.unseen_speakers"):
        _config(unseen_speakers=12)
    with pytest.raises(ConfigError, match=r"synth\.clips"):
        _config(clips=0)


def test_fingerprint_ignores_workers_but_not_seed():
    assert corpus_fingerprint(_config(workers=1)) == corpus_fingerprint(_config(workers=4))
    assert corpus_fingerprint(_config(seed=1)) != corpus_fingerprint(_config(seed=2))


def test_phoneme_frames_sum_to_mel_length():
    names = ["h", "@", "_:", "l", "oU", "_"]
    starts = [300, 1500, 4000, 6000, 7000, 9000]
    out_n, out_f = _phoneme_frames(starts, names, 22050, 24000, 256, 45)
    assert sum(out_f) == 45
    assert len(out_n) == len(out_f)
    assert out_n[0] == "_"  # leading silence becomes a pause
    assert all(f >= 0 for f in out_f)
    assert "_:" not in out_n


def test_scripts_agree_with_label_mostly_not_always():
    rng = np.random.default_rng(0)
    agreements = [scripts.make_script("joy", 0.8, rng)[1] for _ in range(400)]
    assert 0.7 < np.mean(agreements) < 0.9
    vocab = set(scripts.corpus_vocabulary())
    for _ in range(50):
        text, _ = scripts.make_script("anger", 0.8, rng)
        assert set(re.findall(r"[a-z']+", text.lower())) <= vocab


def test_cot_has_four_tags_and_rejected_variants():
    rng = np.random.default_rng(0)
    people = [
        cot.OnScreen("female", "adult", "anger", True),
        cot.OnScreen("male", "child", "joy", False),
    ]
    answer = cot.write_cot(people, "dialogue", "female", "adult", "anger", "anger", rng)
    positions = [
        answer.index(f"<{tag}>") for tag in ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION")
    ]
    assert positions == sorted(positions)
    assert answer.endswith(
        "<CONCLUSION>scene_type=dialogue; gender=female; age=adult; emotion=anger</CONCLUSION>"
    )
    assert "two people" in answer
    rejected = json.loads(
        cot.write_rejected(people, "dialogue", "female", "adult", "anger", "anger", rng)
    )
    assert [r["kind"] for r in rejected] == list(REJECTED_KINDS)
    assert all(r["text"] != answer for r in rejected)
    wrong_scene = rejected[1]["text"]
    assert "scene_type=dialogue" not in wrong_scene


def test_weights_shift_the_mix_for_drift_scenarios():
    plan = plan_corpus(
        load_config(
            "tiny",
            overrides=[
                "synth.clips=80",
                "synth.emotion_weights={joy: 3, surprise: 1}",
                "synth.scene_weights={narration: 1}",
            ],
        )
    )
    emotions = Counter(s.emotion for s in plan)
    assert set(emotions) == {"joy", "surprise"} and emotions["joy"] == 3 * emotions["surprise"]
    assert {s.scene_type for s in plan} == {"narration"}
    with pytest.raises(ValueError, match=r"synth\.emotion_weights has unknown values \['happy'\]"):
        plan_corpus(_config(emotion_weights="{happy: 1}"))
    with pytest.raises(ValueError, match="every value weight 0"):
        plan_corpus(_config(scene_weights="{narration: 0}"))


def test_scene_emotion_agreement_sets_how_often_the_set_shows_the_emotion():
    default = plan_corpus(_config(clips=210))
    assert all(s.scene_emotion == s.emotion for s in default)
    loose = plan_corpus(_config(clips=210, scene_emotion_agreement=0.4))
    agree = np.mean([s.scene_emotion == s.emotion for s in loose])
    assert 0.3 < agree < 0.5
    assert {s.scene_emotion for s in loose} == set(EMOTIONS)
    # Only the sets change: speakers, emotions, scenes and splits stay the same.
    strip = [dataclasses.replace(s, scene_emotion="") for s in loose]
    assert strip == [dataclasses.replace(s, scene_emotion="") for s in default]
    # A lower agreement changes a superset of the sets a higher one changes.
    looser = plan_corpus(_config(clips=210, scene_emotion_agreement=0.2))
    changed = {s.clip_id for s in loose if s.scene_emotion != s.emotion}
    assert changed <= {s.clip_id for s in looser if s.scene_emotion != s.emotion}
    assert corpus_fingerprint(_config(scene_emotion_agreement=0.4)) != corpus_fingerprint(_config())
    with pytest.raises(ConfigError, match="scene_emotion_agreement"):
        _config(scene_emotion_agreement=1.5)
