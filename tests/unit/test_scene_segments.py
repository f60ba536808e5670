"""Reading and checking a scene's lines: SRT and JSON, and every way they can be wrong."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dubops.errors import InputError
from dubops.scenes.segments import (
    Segment,
    check_segments,
    parse_json_segments,
    parse_srt,
    read_segments,
    with_changes,
)

SRT = """1
00:00:00,000 --> 00:00:02,500
ALICE: Where were you
last night?

2
00:00:03,000 --> 00:00:05,250
Bob: At the station.
"""
VOICES = {"ALICE": Path("a.wav"), "Bob": Path("b.wav")}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_srt_cues_give_slots_speakers_and_joined_lines(tmp_path):
    segments = read_segments(_write(tmp_path, "s.srt", SRT))
    assert [(s.number, s.start, s.end, s.speaker, s.line) for s in segments] == [
        (1, 0.0, 2.5, "ALICE", 1),
        (2, 3.0, 5.25, "Bob", 6),
    ]
    assert segments[0].text == "Where were you last night?"
    check_segments(segments, 6.0, VOICES)


def test_json_segments_keep_overrides_and_seed_and_come_in_time_order(tmp_path):
    items = [
        {"start": 3, "end": 4.5, "speaker": "Bob", "text": "Later.", "emotion": "anger", "seed": 4},
        {"start": 0, "end": 2, "speaker": "ALICE", "text": "First."},
    ]
    segments = read_segments(_write(tmp_path, "s.json", json.dumps({"segments": items})))
    assert [s.text for s in segments] == ["First.", "Later."]
    assert [s.number for s in segments] == [1, 2]
    assert segments[1].overrides == {"emotion": "anger"} and segments[1].seed == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1\n00:00:00,000 -> 00:00:02,000\nA: hi\n", "line 2: expected 'HH:MM:SS,mmm"),
        ("1\n00:00:00,000 --> 00:00:2,000\nA: hi\n", "line 2: '00:00:2,000' is not a time"),
        ("one\n00:00:00,000 --> 00:00:02,000\nA: hi\n", "line 1: expected a cue number"),
        ("1\n00:00:00,000 --> 00:00:02,000\nhello there\n", "line 1: no speaker"),
        ("1\n00:00:00,000 --> 00:00:02,000\nA:   \n", "line 1: A says nothing"),
        ("1\n00:00:00,000 --> 00:00:02,000\n\n", "line 1: the cue has no text"),
        ("1\n00:00:00,000 --> 00:01:75,000\nA: hi\n", "minutes or seconds over 59"),
    ],
)
def test_malformed_srt_names_the_line_and_the_fix(text, expected):
    with pytest.raises(InputError, match=expected.replace("(", r"\(")):
        parse_srt(text, "s.srt")


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ('[{"start": 0, "end": 1, "speaker": "A"}]', r"line 1: missing \['text'\]"),
        ('[\n{"start": 0, "end": 1, "speaker": "A", "text": ""}]', "line 2: the text is empty"),
        ('[{"start": "x", "end": 1, "speaker": "A", "text": "t"}]', "start 'x' is not a time"),
        ('[{"start": 0, "end": 1, "speaker": "A", "text": "t", "mood": 1}]', "unknown field"),
        ('[{"start": 0, "end": 1, "speaker": "A", "text": "t", "emotion": "glee"}]', "'glee'"),
        ('[{"start": 0, "end": 1, "speaker": "A", "text": "t"},\n 3]', "line 2: a segment"),
        ('{"start": 0}', "expected a list of segments"),
        ('[{"start": 0,\n "end": 1,]', "line 2: not valid JSON"),
    ],
)
def test_malformed_json_names_the_line_and_the_fix(items, expected):
    with pytest.raises(InputError, match=expected):
        parse_json_segments(items, "s.json")


def test_empty_files_and_inverted_slots_are_refused(tmp_path):
    with pytest.raises(InputError, match="no segments"):
        read_segments(_write(tmp_path, "e.srt", "\n\n"))
    with pytest.raises(InputError, match="no segments"):
        read_segments(_write(tmp_path, "e.json", "[]"))
    inverted = "1\n00:00:03,000 --> 00:00:02,000\nA: hi\n"
    with pytest.raises(InputError, match=re.escape("line 1: ends at 2.000 s, not after its start")):
        read_segments(_write(tmp_path, "i.srt", inverted))
    with pytest.raises(InputError, match=re.escape("unknown format '.txt'")):
        read_segments(_write(tmp_path, "s.txt", SRT))


def _line(number, start, end, speaker="ALICE", text="Hello there.", line=0):
    return Segment(number, start, end, speaker, text, line=line)


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        ([_line(1, 0, 2, line=1), _line(2, 1.5, 3, line=5)], "line 5: starts at 1.500 s, before"),
        ([_line(1, 0, 2), _line(2, 4, 7.5)], "segment 2: ends at 7.500 s, past the video's end"),
        ([_line(1, 0, 0.3)], "a 0.300 s slot"),
        ([_line(1, 0, 2, speaker="Carol")], "speaker 'Carol' has no voice.*--voice Carol="),
        ([_line(1, 0, 0.6, text="word " * 20)], "cannot be spoken in its 0.60 s slot"),
    ],
)
def test_lines_that_do_not_fit_the_video_or_the_voices_are_refused(segments, expected):
    with pytest.raises(InputError, match=expected):
        check_segments(segments, 6.0, VOICES)


def test_a_slot_may_end_a_rounding_past_the_last_frame():
    check_segments([_line(1, 0, 6.04)], 6.0, VOICES)


def test_changes_touch_only_the_named_line_and_are_checked():
    segments = [_line(1, 0, 2), _line(2, 3, 5, speaker="Bob")]
    changed = with_changes(segments, {2: {"emotion": "joy", "seed": "7", "text": " Again. "}})
    assert changed[0] is segments[0]
    assert changed[1].overrides == {"emotion": "joy"}
    assert (changed[1].seed, changed[1].text) == (7, "Again.")
    # The next line still reacts to what the subtitles say, not to the re-dub's new text.
    assert (changed[1].cue, segments[1].cue) == ("Hello there.", "Hello there.")
    with pytest.raises(InputError, match="--segment 3: no such segment; the scene has 1 to 2"):
        with_changes(segments, {3: {"seed": "1"}})
    with pytest.raises(InputError, match=re.escape("--segment 1.mood: unknown field")):
        with_changes(segments, {1: {"mood": "x"}})
    with pytest.raises(InputError, match=re.escape("--segment 1.seed='x': give a whole number")):
        with_changes(segments, {1: {"seed": "x"}})
