"""The HTTP API BentoML serves: ``/dub``, ``/artifacts/{id}`` and the durable ``/jobs``.

A FastAPI app (BentoML mounts it with ``bentoml.asgi_app``) over a
:class:`~dubops.serving.core.DubbingService`; every route is a few lines of
protocol. Requests are JSON (media base64 or allowed paths) or multipart (media as
files); errors are JSON ``{"error": ...}`` with the status
:func:`dubops.serving.wire.http_status` gives. A body over the upload limit is
refused with 413 while it streams in; health and metrics stay BentoML's and never
need the token.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

# At module level: FastAPI resolves the routes' annotations (Request, Header) from here.
from fastapi import FastAPI, Header, Request

if TYPE_CHECKING:
    from dubops.serving.core import DubbingService

SERVER = "bento"
_DUB_EXAMPLE = {
    "script": "We leave at dawn.",
    "video_b64": "<mp4 bytes, base64>",
    "prompt_b64": "<wav bytes, base64>",
    "emotion": "happy",
    "mp4": True,
}


def create_app(get_service: Any) -> FastAPI:
    """The API over ``get_service()`` (the service loads in the background)."""
    from fastapi import FastAPI
    from fastapi.responses import FileResponse, JSONResponse

    app = FastAPI(
        title="DubOps dubbing API",
        version="1",
        description="Dub a silent clip from its script and a timbre prompt; long work as jobs.",
    )
    app.add_middleware(Hygiene, get_service=get_service)

    def service(authorization: str | None) -> DubbingService:
        svc: DubbingService = get_service()
        svc.check_token(authorization)
        if not svc.ready:
            raise _NotReadyError("the model is still loading; retry when /readyz answers 200")
        return svc

    from dubops.errors import DubOpsError

    # Our errors by class (answered here); anything else is a 500 without its traceback.
    for kind in (DubOpsError, _NotReadyError, Exception):

        @app.exception_handler(kind)
        async def _errors(request: Request, exc: Exception) -> JSONResponse:
            return _error_response(get_service(), exc)

    @app.post(
        "/dub",
        summary="Dub a short clip now",
        openapi_extra=_body_doc(),
        responses={400: {}, 401: {}, 413: {}, 415: {}, 429: {}, 504: {}},
    )
    async def dub(request: Request, authorization: str | None = Header(None)) -> dict:
        from dubops.serving.wire import result_json

        svc = service(authorization)
        dub_request = svc.request(await _fields(request))
        [(result, ids)] = await svc.dub([dub_request])
        return result_json(result, ids)

    @app.get("/artifacts/{artifact_id}", summary="A result file (wav or mp4)")
    async def artifact(artifact_id: str, authorization: str | None = Header(None)) -> Any:
        from dubops.serving.artifacts import MEDIA_TYPES

        svc = service(authorization)
        try:
            path = svc.artifacts.path(artifact_id)
        except FileNotFoundError:
            return JSONResponse({"error": f"artifact {artifact_id}: no such file"}, 404)
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix[1:]])

    @app.post(
        "/jobs",
        status_code=202,
        summary="Queue a dub (long clips); the same Idempotency-Key gives the same job",
        openapi_extra=_body_doc(),
        responses={200: {}, 400: {}, 401: {}, 413: {}, 415: {}, 429: {}},
    )
    async def create_job(
        request: Request,
        authorization: str | None = Header(None),
        idempotency_key: str | None = Header(None, max_length=200),
    ) -> Any:
        import anyio

        svc = service(authorization)
        fields = await _fields(request)
        job = await anyio.to_thread.run_sync(svc.submit_job, fields, idempotency_key)
        return JSONResponse(job.to_json(), 202 if job.state == "queued" else 200)

    @app.get("/jobs/{job_id}", summary="A job's state, stage and progress")
    async def get_job(job_id: str, authorization: str | None = Header(None)) -> Any:
        job = _job(service(authorization), job_id)
        return job.to_json() if job is not None else _missing(job_id)

    @app.get("/jobs/{job_id}/result", summary="A finished job's result (409 until then)")
    async def job_result(job_id: str, authorization: str | None = Header(None)) -> Any:
        job = _job(service(authorization), job_id)
        if job is None:
            return _missing(job_id)
        if job.state != "succeeded":
            detail = f"job {job_id} is {job.state}" + (f": {job.error}" if job.error else "")
            return JSONResponse({"error": detail, "state": job.state}, 409)
        return job.result

    @app.delete("/jobs/{job_id}", summary="Cancel a job (its work stops)")
    async def cancel_job(job_id: str, authorization: str | None = Header(None)) -> Any:
        svc = service(authorization)
        job = svc.runner.cancel(job_id)
        return job.to_json() if job is not None else _missing(job_id)

    return app


class _NotReadyError(Exception):
    pass


def _job(svc: DubbingService, job_id: str) -> Any:
    return svc.store.get(job_id)


def _missing(job_id: str) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": f"job {job_id}: no such job"}, 404)


async def _fields(request: Request) -> dict[str, Any]:
    """JSON or multipart form fields (files as bytes); 400 for anything else."""
    from dubops.errors import InputError

    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        import json

        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"body: not valid JSON ({exc}); send a JSON object") from None
        if not isinstance(body, dict):
            raise InputError("body: expected a JSON object of fields")
        return body
    if kind == "multipart/form-data":
        from starlette.datastructures import UploadFile

        try:
            form = await request.form()
        except _TooLargeError:
            raise
        except Exception as exc:  # malformed multipart framing
            raise InputError(f"body: not a readable multipart form ({exc})") from None
        fields: dict[str, Any] = {}
        for key, value in form.multi_items():
            fields[key] = await value.read() if isinstance(value, UploadFile) else value
        return fields
    raise InputError(
        f"content-type: {kind or 'missing'}; send application/json or multipart/form-data"
    )


def _error_response(svc: DubbingService, exc: Exception) -> Any:
    import logging

    from fastapi.responses import JSONResponse

    from dubops.serving.batcher import QueueFullError
    from dubops.serving.wire import http_status

    status = 503 if isinstance(exc, _NotReadyError) else http_status(exc)
    if status == 500:
        logging.getLogger(__name__).error("request failed", exc_info=exc)
    svc.metrics.count_error(SERVER, type(exc).__name__)
    headers = {}
    if isinstance(exc, QueueFullError):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    message = str(exc) if status != 500 else f"internal error ({type(exc).__name__})"
    return JSONResponse({"error": message}, status, headers=headers)


def _body_doc() -> dict[str, Any]:
    """The request body in the OpenAPI spec (the route reads it itself, JSON or multipart)."""
    text = {"type": "string"}
    fields = {
        "script": {"type": "string", "minLength": 1},
        "react": text,
        "clip_id": text,
        "speaker_id": text,
        "scene_type": {"type": "string", "enum": ["dialogue", "monologue", "narration"]},
        "gender": text,
        "age": text,
        "emotion": text,
        "target_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 120},
        "seed": {"type": "integer", "minimum": 0},
        "nfe": {"type": "integer", "minimum": 1, "maximum": 256},
        "mp4": {"type": "boolean"},
    }
    as_json = {
        **fields,
        "video_b64": {"type": "string", "contentEncoding": "base64"},
        "prompt_b64": {"type": "string", "contentEncoding": "base64"},
        "video_uri": text,
        "prompt_uri": text,
    }
    as_form = {
        **fields,
        "video": {"type": "string", "format": "binary"},
        "prompt": {"type": "string", "format": "binary"},
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "properties": as_json, "required": ["script"]},
                    "example": _DUB_EXAMPLE,
                },
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": as_form,
                        "required": ["script", "video", "prompt"],
                    }
                },
            },
        }
    }


class Hygiene:
    """ASGI middleware: 413 once a body passes the upload limit (declared or streamed),
    and every answer counted by route template, method and status."""

    def __init__(self, app: Any, get_service: Any) -> None:
        self.app = app
        self.get_service = get_service

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        svc = self.get_service()
        tick, status = time.perf_counter(), [500]
        limit = int(svc.settings.max_upload_mb * 2**20)
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
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or "unmatched"
        seconds = time.perf_counter() - tick
        svc.metrics.observe_request(SERVER, endpoint, scope["method"], status[0], seconds)


class _TooLargeError(Exception):
    pass


async def _too_large(send: Any, limit: int) -> None:
    import json

    body = json.dumps(
        {"error": f"body: over the {limit / 2**20:.0f} MiB upload limit; send a smaller file"}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
