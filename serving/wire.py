"""What travels over HTTP: request fields to a :class:`DubRequest`, a result to JSON, errors
to status codes. Both servers use it, so a field means the same on every endpoint.

Media come as bytes (base64 in JSON: ``video_b64``, or KServe v1's ``{"b64": ...}``;
a multipart file) or as a path under the server's allowed roots (``video_uri``,
``file://`` or a plain path). The bytes are checked by their magic numbers, never
by the type the client declares.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dubops.errors import DubOpsError, InputError

MEDIA = ("video", "prompt")
TEXT_FIELDS = ("script", "react", "clip_id", "speaker_id")
OVERRIDE_FIELDS = ("scene_type", "gender", "age", "emotion", "target_seconds", "seed", "nfe")
FLAG_FIELDS = ("mp4",)
FIELDS = (*TEXT_FIELDS, *OVERRIDE_FIELDS, *FLAG_FIELDS)


class UnsupportedMediaError(InputError):
    """Bytes that are not a video (mp4, mov, mkv, webm, avi) or audio (wav, flac, ogg)."""


class PayloadTooLargeError(InputError):
    """A request body or a media file over the server's limit."""


class UnauthorizedError(DubOpsError):
    """A missing or wrong bearer token."""


def check_magic(name: str, data: bytes) -> None:
    """Refuse bytes whose first bytes are not the container ``name`` needs (415)."""
    if not data:
        raise InputError(f"{name}: the file is empty; send the whole file")
    head = data[:12]
    if name == "video":
        ok = (
            head[4:8] == b"ftyp"  # ISO BMFF: mp4, mov, m4v
            or head[:4] == b"\x1a\x45\xdf\xa3"  # Matroska / WebM
            or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
        )
        kinds = "mp4, mov, mkv, webm or avi"
    else:
        ok = (head[:4] == b"RIFF" and head[8:12] == b"WAVE") or head[:4] in (b"fLaC", b"OggS")
        kinds = "wav, flac or ogg"
    if not ok:
        raise UnsupportedMediaError(
            f"{name}: the bytes are not a {kinds} file (first bytes {head[:8].hex()}); "
            f"send a {kinds.split(',')[0]} file"
        )


def decode_base64(name: str, text: Any) -> bytes:
    """Base64 text to bytes (400 naming the field when it is not base64)."""
    if not isinstance(text, str):
        raise InputError(f"{name}: expected base64 text, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{name}: not valid base64; encode the file's bytes") from None


def media_from_fields(
    name: str, fields: Mapping[str, Any], roots: list[Path], max_bytes: int
) -> bytes | Path:
    """One media input from ``<name>_b64``, ``<name>`` (``{"b64": ...}`` or bytes) or
    ``<name>_uri`` / ``<name>_path`` (a path under ``roots``)."""
    raw = fields.get(name)
    if isinstance(raw, Mapping) and "b64" in raw:
        data: bytes | None = decode_base64(name, raw["b64"])
    elif isinstance(raw, bytes | bytearray):
        data = bytes(raw)
    elif fields.get(f"{name}_b64") is not None:
        data = decode_base64(f"{name}_b64", fields[f"{name}_b64"])
    else:
        data = None
    if data is not None:
        if len(data) > max_bytes:
            raise PayloadTooLargeError(
                f"{name}: {len(data) / 2**20:.1f} MiB is over the {max_bytes / 2**20:.0f} MiB "
                "limit; send a shorter or smaller file"
            )
        check_magic(name, data)
        return data
    uri = fields.get(f"{name}_uri") or fields.get(f"{name}_path") or raw
    if not uri:
        raise InputError(
            f"{name}: missing; send the file (multipart), {name}_b64 (base64) or {name}_uri"
        )
    return path_under_roots(name, str(uri), roots)


def path_under_roots(name: str, uri: str, roots: list[Path]) -> Path:
    """A ``file://`` URI or path, refused unless it resolves inside one of ``roots``."""
    text = uri.removeprefix("file://")
    if "://" in text:
        raise InputError(f"{name}: {uri!r} is not a file path; send the bytes or a local path")
    try:
        path = Path(text).resolve()
    except (ValueError, OSError):  # a NUL byte, a symlink loop: no file a client may name
        raise InputError(f"{name}: {uri!r} is not a usable file path") from None
    from dubops.inference.request import check_under_roots

    check_under_roots(name, path, roots, shown=uri)
    if not path.is_file():
        raise InputError(f"{name}: {uri} is not a file; give an existing file")
    return path


def request_from_fields(
    fields: Mapping[str, Any], roots: list[Path], max_bytes: int, mp4: bool | None = None
) -> Any:
    """A :class:`DubRequest` from wire fields (unknown fields are refused by name)."""
    from dubops.inference.request import DubRequest

    known = {*FIELDS, *MEDIA, *(f"{m}_{s}" for m in MEDIA for s in ("b64", "uri", "path"))}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise InputError(f"{unknown[0]}: unknown field; the fields are {sorted(known)}")
    values = {k: _scalar(k, fields[k]) for k in FIELDS if fields.get(k) not in (None, "")}
    if "script" not in values:
        raise InputError("script: missing; give the line the clip's speaker says")
    if mp4 is not None:
        values["mp4"] = mp4
    media = {m: media_from_fields(m, fields, roots, max_bytes) for m in MEDIA}
    return DubRequest(**values, **media)


def _scalar(name: str, value: Any) -> Any:
    """Form fields arrive as text: numbers and flags are parsed here (400 naming the field)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{name}: not UTF-8 text; send the text UTF-8 encoded") from None
    if name in FLAG_FIELDS and isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0"):
            raise InputError(f"{name}: {value!r} is not true or false")
        return value.lower() in ("true", "1")
    return value


def result_json(result: Any, artifacts: Mapping[str, str]) -> dict[str, Any]:
    """What a client gets back: the result's data and the ids of its files."""
    data = result.to_json()
    data["artifacts"] = dict(artifacts)
    return data


def http_status(exc: BaseException) -> int:
    """The status code a server answers for one of our errors (500 for anything else)."""
    from dubops.cancellation import Cancelled
    from dubops.errors import MediaError
    from dubops.serving.batcher import QueueFullError, RequestTimeoutError

    for kind, status in (
        (UnauthorizedError, 401),
        (PayloadTooLargeError, 413),
        (UnsupportedMediaError, 415),
        (QueueFullError, 429),
        ((RequestTimeoutError, Cancelled), 504),
        ((InputError, MediaError), 400),
    ):
        if isinstance(exc, kind):
            return status
    return 500
