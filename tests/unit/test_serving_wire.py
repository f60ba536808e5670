"""Wire fields to requests: magic bytes, base64, allowed roots, unknown fields, status codes."""

from __future__ import annotations

import base64

import pytest

from dubops.cancellation import Cancelled
from dubops.errors import InputError
from dubops.serving import wire
from dubops.serving.batcher import QueueFullError, RequestTimeoutError

MP4_HEAD = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 20
WAV_HEAD = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 20


def test_media_are_known_by_their_magic_bytes_not_their_name():
    wire.check_magic("video", MP4_HEAD)
    wire.check_magic("prompt", WAV_HEAD)
    with pytest.raises(wire.UnsupportedMediaError, match="video: the bytes are not"):
        wire.check_magic("video", WAV_HEAD)
    with pytest.raises(wire.UnsupportedMediaError, match="prompt"):
        wire.check_magic("prompt", MP4_HEAD)
    with pytest.raises(InputError, match="empty"):
        wire.check_magic("video", b"")


def test_base64_and_size_limits_name_the_field():
    with pytest.raises(InputError, match="video_b64: not valid base64"):
        wire.media_from_fields("video", {"video_b64": "!!"}, [], 100)
    big = base64.b64encode(MP4_HEAD * 10).decode()
    with pytest.raises(wire.PayloadTooLargeError, match=r"video: .* limit"):
        wire.media_from_fields("video", {"video_b64": big}, [], 100)
    as_v1 = {"video": {"b64": base64.b64encode(MP4_HEAD).decode()}}
    assert wire.media_from_fields("video", as_v1, [], 1000) == MP4_HEAD
    with pytest.raises(InputError, match="prompt: missing"):
        wire.media_from_fields("prompt", {}, [], 100)


def test_paths_are_read_only_under_the_allowed_roots(tmp_path):
    inside = tmp_path / "clips" / "a.mp4"
    inside.parent.mkdir()
    inside.write_bytes(MP4_HEAD)
    roots = [tmp_path / "clips"]
    assert wire.path_under_roots("video", f"file://{inside}", roots) == inside.resolve()
    for outside in ("/etc/passwd", f"{tmp_path}/clips/../../etc/passwd", "file:///etc/hosts"):
        with pytest.raises(InputError, match="outside the allowed folders"):
            wire.path_under_roots("video", outside, roots)
    with pytest.raises(InputError, match="not a file path"):
        wire.path_under_roots("video", "http://example.com/a.mp4", roots)


def test_unknown_fields_and_bad_text_are_refused_by_name():
    fields = {"script": "hi", "video_b64": "", "prompt_b64": "", "colour": "red"}
    with pytest.raises(InputError, match="colour: unknown field"):
        wire.request_from_fields(fields, [], 1000)
    with pytest.raises(InputError, match="script: missing"):
        wire.request_from_fields({"video_b64": "x"}, [], 1000)
    with pytest.raises(InputError, match="script: not UTF-8"):
        wire.request_from_fields({"script": b"\xff\xfe"}, [], 1000)
    with pytest.raises(InputError, match="mp4"):
        wire.request_from_fields({"script": "hi", "mp4": "maybe"}, [], 1000)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (wire.UnauthorizedError("x"), 401),
        (InputError("x"), 400),
        (wire.PayloadTooLargeError("x"), 413),
        (wire.UnsupportedMediaError("x"), 415),
        (QueueFullError(3, 5.0), 429),
        (RequestTimeoutError("x"), 504),
        (Cancelled("x"), 504),
        (KeyError("bug"), 500),
    ],
)
def test_each_error_has_its_status(error, status):
    assert wire.http_status(error) == status
