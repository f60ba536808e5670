"""What both HTTP servers share below their routes: body parsing, the upload limit,
request counting and the error answer.

BentoML mounts our FastAPI app; KServe has its own FastAPI app. Both get
:class:`Hygiene` (a body past the limit is refused with 413 while it streams in;
every answer counted by route template, method and status) and answer our errors
with :func:`error_response` (``{"error": ...}`` with the status
:func:`dubops.serving.wire.http_status` gives).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dubops.errors import InputError

if TYPE_CHECKING:
    from dubops.serving.core import DubbingService

logger = logging.getLogger(__name__)


class NotReadyError(Exception):
    """The model is still loading (503)."""


def error_response(exc: Exception, service: DubbingService, server: str) -> Any:
    """The JSON answer to a failed request (our errors 4xx, anything else a bare 500)."""
    from fastapi.responses import JSONResponse

    from dubops.serving.batcher import QueueFullError
    from dubops.serving.wire import http_status

    status = 503 if isinstance(exc, NotReadyError) else http_status(exc)
    if status == 500:
        logger.error("request failed", exc_info=exc)
    service.metrics.count_error(server, type(exc).__name__)
    headers = {}
    if isinstance(exc, QueueFullError):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    message = str(exc) if status != 500 else f"internal error ({type(exc).__name__})"
    return JSONResponse({"error": message}, status, headers=headers)


def fields_from_body(content_type: str, body: bytes) -> dict[str, Any]:
    """JSON or multipart form fields (multipart values as bytes, decoded later as strict
    UTF-8: Starlette's form parser falls back to latin-1 and would let mojibake through)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            fields = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"body: not valid JSON ({exc}); send a JSON object") from None
        if not isinstance(fields, dict):
            raise InputError("body: expected a JSON object of fields")
        return fields
    if kind == "multipart/form-data":
        return _multipart(content_type, body)
    raise InputError(
        f"content-type: {kind or 'missing'}; send application/json or multipart/form-data"
    )


def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    from email.parser import BytesParser
    from email.policy import HTTP

    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart() or message.defects:
        raise InputError("body: not a readable multipart form; check its boundary and parts")
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            raise InputError("body: a form part has no name; name every field")
        fields[str(name)] = part.get_payload(decode=True) or b""
    return fields


class Hygiene:
    """ASGI middleware: 413 once a body passes ``limit(service)`` bytes (declared or
    streamed), and every answer counted in the service's metrics."""

    def __init__(
        self,
        app: Any,
        get_service: Callable[[], DubbingService],
        server: str,
        limit: Callable[[DubbingService], int],
    ) -> None:
        self.app, self.get_service, self.server, self.limit = app, get_service, server, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        service = self.get_service()
        tick, status = time.perf_counter(), [500]
        limit = self.limit(service)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        seen = 0

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLargeError
            return message

        async def noting_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise _TooLargeError
            await self.app(scope, limited_receive, noting_send)
        except _TooLargeError:
            await _too_large(noting_send, limit)
        finally:
            endpoint = getattr(scope.get("route"), "path", None) or "unmatched"
            seconds = time.perf_counter() - tick
            service.metrics.observe_request(
                self.server, endpoint, scope["method"], status[0], seconds
            )


class _TooLargeError(Exception):
    pass


async def _too_large(send: Any, limit: int) -> None:
    body = json.dumps(
        {"error": f"body: over the {limit / 2**20:.0f} MiB upload limit; send a smaller file"}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
