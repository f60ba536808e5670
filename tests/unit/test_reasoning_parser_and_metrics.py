"""The strict conclusion parser and the reasoning metrics built on it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dubops.data import cot
from dubops.evaluation.reasoning import read_reasoning_jsonl, score_reasoning
from dubops.reasoning.parser import Conclusion, ReasoningParseError, parse_answer

PEOPLE = [cot.OnScreen("female", "adult", "anger", True)]


def _answer(scene="monologue", gender="female", age="adult", emotion="anger", seed=0):
    rng = np.random.default_rng(seed)
    return cot.write_cot(PEOPLE, scene, gender, age, emotion, emotion, rng)


def test_parses_the_corpus_answers():
    assert parse_answer(_answer()) == Conclusion("monologue", "female", "adult", "anger")


@pytest.mark.parametrize("kind", ["broken_format"])
def test_every_broken_variant_is_rejected(kind):
    for seed in range(20):
        rng = np.random.default_rng(seed)
        rejected = json.loads(
            cot.write_rejected(PEOPLE, "monologue", "female", "adult", "anger", "anger", rng)
        )
        broken = next(r["text"] for r in rejected if r["kind"] == kind)
        with pytest.raises(ReasoningParseError):
            parse_answer(broken)


def test_messages_say_what_is_wrong():
    with pytest.raises(ReasoningParseError, match="lacks the tag"):
        parse_answer("<SUMMARY>x</SUMMARY>")
    with pytest.raises(ReasoningParseError, match="not one of"):
        parse_answer(_answer().replace("emotion=anger", "emotion=rage"))
    with pytest.raises(ReasoningParseError, match="unclosed"):
        parse_answer(_answer().replace("</CAPTION>", ""))


def test_score_reasoning(tmp_path):
    refs = pd.DataFrame(
        {
            "clip_id": ["a", "b", "c", "d"],
            "scene_type": ["monologue", "dialogue", "narration", "monologue"],
            "gender": ["female"] * 4,
            "age": ["adult"] * 4,
            "emotion": ["anger"] * 4,
        }
    )
    lines = [
        {"clip_id": "a", "text": _answer("monologue")},
        {"clip_id": "b", "text": _answer("monologue")},  # wrong scene
        {"clip_id": "c", "text": _answer("narration")},
        {"clip_id": "d", "text": "<SUMMARY>no</SUMMARY>"},  # unparsable
    ]
    path = tmp_path / "out.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    scores = score_reasoning(read_reasoning_jsonl(path), refs)
    assert scores["format_validity"] == 0.75
    assert scores["scene_type_accuracy"] == 0.5
    assert scores["scene_type_recall"] == {"dialogue": 0.0, "monologue": 0.5, "narration": 1.0}
    assert scores["emotion_accuracy"] == 0.75
    assert sum(map(sum, scores["scene_type_confusion"]["matrix"])) == 4


def test_bad_jsonl_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"clip_id": "a", "text": "x"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        read_reasoning_jsonl(path)
