"""A scene job's wire fields: changes, subtitle format, voices, seed (no server needed)."""

from __future__ import annotations

import base64

import pytest

from dubops.errors import InputError
from dubops.serving.scene_jobs import _changes, _format, _seed, _voice_bytes, redub_request

WAV_HEAD = b"RIFF\x24\x00\x00\x00WAVEfmt "


def test_changes_come_as_objects_or_json_text_with_values_as_text():
    assert _changes({"3": {"emotion": "anger", "seed": 2}}) == {
        "3": {"emotion": "anger", "seed": "2"}
    }
    assert _changes(b'{"1": {"text": "Hi."}}') == {"1": {"text": "Hi."}}
    assert _changes(None) == {} and _changes("") == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{not json", "changes: not JSON"),
        ({"x": {"seed": 1}}, "changes: 'x' is not a line number"),
        ({"2": {"volume": 3}}, "changes.2.volume: unknown field"),
        ({"2": 5}, "changes.2: expected an object"),
    ],
)
def test_bad_changes_name_the_field(value, expected):
    with pytest.raises(InputError, match=expected):
        _changes(value)


def test_the_subtitle_format_is_given_or_read_from_the_text():
    assert _format(None, '[{"start": 0}]') == "json"
    assert _format("", "1\n00:00:00,000 --> 00:00:01,000\nA: Hi.") == "srt"
    assert _format(b"JSON", "anything") == "json"
    with pytest.raises(InputError, match="subtitles_format: 'vtt'; give srt or json"):
        _format("vtt", "WEBVTT")


def test_a_voice_must_be_audio_and_its_error_names_the_speaker():
    assert _voice_bytes("voice_A", WAV_HEAD + b"data") == WAV_HEAD + b"data"
    assert _voice_bytes("voices.A", {"b64": base64.b64encode(WAV_HEAD).decode()}) == WAV_HEAD
    with pytest.raises(InputError, match=r"^voice_B: the bytes are not a wav"):
        _voice_bytes("voice_B", b"\x00\x00\x00\x18ftypmp42")
    with pytest.raises(InputError, match=r"voices\.C: not valid base64"):
        _voice_bytes("voices.C", "***")


def test_seed_and_redub_of_a_clip_job_are_refused():
    assert _seed(b"7") == 7 and _seed(None) == 0
    with pytest.raises(InputError, match="seed: -1"):
        _seed("-1")
    with pytest.raises(InputError, match="not a scene job"):
        redub_request({"script": "Hi."}, 1, {"seed": 1})
    with pytest.raises(InputError, match="body: no changes"):
        redub_request({"kind": "scene"}, 1, {})
