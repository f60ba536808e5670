"""HTTP pieces both servers share: body parsing and the bearer token."""

from __future__ import annotations

import pytest

from dubops.errors import InputError
from dubops.serving import wire
from dubops.serving.http_common import fields_from_body

BOUNDARY = "dubopsboundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def _form(*parts: tuple[str, bytes, str | None]) -> bytes:
    chunks = []
    for name, data, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        chunks.append(
            f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
        )
    return b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()


def test_multipart_files_come_back_byte_for_byte():
    binary = bytes(range(256)) * 4 + b"\r\n--not-a-boundary\r\n" + b"\x00\xff" * 10
    body = _form(("video", binary, "clip.mp4"), ("script", "Où sont les clés ?".encode(), None))
    fields = fields_from_body(CONTENT_TYPE, body)
    assert fields["video"] == binary
    assert fields["script"].decode("utf-8") == "Où sont les clés ?"


def test_a_non_utf8_form_field_is_refused_by_name():
    fields = fields_from_body(CONTENT_TYPE, _form(("script", b"\xff\xfe bad", None)))
    with pytest.raises(InputError, match="script: not UTF-8"):
        wire.request_from_fields(fields, [], 1000)


def test_bodies_that_are_neither_json_nor_a_form_are_refused():
    with pytest.raises(InputError, match="body: not valid JSON"):
        fields_from_body("application/json", b"{nope")
    with pytest.raises(InputError, match="body: expected a JSON object"):
        fields_from_body("application/json", b"[1, 2]")
    with pytest.raises(InputError, match="content-type: text/plain"):
        fields_from_body("text/plain", b"hi")
    with pytest.raises(InputError, match="multipart"):
        fields_from_body("multipart/form-data; boundary=x", b"garbage without parts")


def test_the_token_needs_the_bearer_scheme(monkeypatch, tmp_path):
    from dubops.config import load_config
    from dubops.serving.core import DubbingService

    config = load_config("tiny", overrides=[f"serving.state_dir={tmp_path}"])
    service = DubbingService(config, server="test", jobs=False)
    monkeypatch.delenv("DUBOPS_API_TOKEN", raising=False)
    service.check_token(None)  # no token configured: open
    monkeypatch.setenv("DUBOPS_API_TOKEN", "secret")
    service.check_token("Bearer secret")
    for wrong in (None, "", "secret", "Bearer wrong", "Basic secret", "Bearer"):
        with pytest.raises(wire.UnauthorizedError, match="authorization"):
            service.check_token(wrong)
