"""The HTTP API BentoML serves: ``/dub``, ``/artifacts/{id}``, the durable ``/jobs`` (a clip,
or a scene with subtitles and voices: :mod:`dubops.serving.scene_jobs`) and the review
page at ``/review``.

A FastAPI app (BentoML mounts it with ``bentoml.asgi_app``) over a
:class:`~dubops.serving.core.DubbingService`; every route is a few lines of
protocol. Requests are JSON (media base64 or allowed paths) or multipart (media as
files); errors are JSON ``{"error": ...}`` with the status
:func:`dubops.serving.wire.http_status` gives. A body over the upload limit is
refused with 413 while it streams in; health and metrics stay BentoML's and never
need the token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# At module level: FastAPI resolves the routes' annotations (Request, Header) from here.
from fastapi import FastAPI, Header, Request

from dubops.serving.http_common import Hygiene, NotReadyError, error_response, fields_from_body

if TYPE_CHECKING:
    from dubops.serving.core import DubbingService

SERVER = "bento"
_DUB_EXAMPLE = {
    "script": "We leave at dawn.",
    "video_b64": "<mp4 bytes, base64>",
    "prompt_b64": "<wav bytes, base64>",
    "emotion": "joy",
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
    app.add_middleware(Hygiene, get_service=get_service, server=SERVER, limit=_upload_limit)

    def service(authorization: str | None) -> DubbingService:
        svc: DubbingService = get_service()
        svc.check_token(authorization)
        if not svc.ready:
            raise NotReadyError("the model is still loading; retry when /readyz answers 200")
        return svc

    from dubops.errors import DubOpsError

    # Our errors by class (answered here); anything else is a 500 without its traceback.
    for kind in (DubOpsError, NotReadyError, Exception):

        @app.exception_handler(kind)
        async def _errors(request: Request, exc: Exception) -> JSONResponse:
            return error_response(exc, get_service(), SERVER)

    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own checks (a header too long): our {"error": ...} shape, its 422.
        problems = [f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "; ".join(problems)}, 422)

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
        [(result, ids)] = await _unless_disconnected(request, svc.dub([dub_request]))
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
        job, created = await anyio.to_thread.run_sync(svc.submit_job, fields, idempotency_key)
        # 202: a new job; 200: a retry with a known key (whatever state its job is in).
        return JSONResponse(job.to_json(), 202 if created else 200)

    @app.get("/jobs/{job_id}", summary="A job's state, stage and progress")
    async def get_job(job_id: str, authorization: str | None = Header(None)) -> Any:
        job = service(authorization).store.get(job_id)
        return job.to_json() if job is not None else _missing(job_id)

    @app.get("/jobs/{job_id}/result", summary="A finished job's result (409 until then)")
    async def job_result(job_id: str, authorization: str | None = Header(None)) -> Any:
        job = service(authorization).store.get(job_id)
        if job is None:
            return _missing(job_id)
        if job.state != "succeeded":
            detail = f"job {job_id} is {job.state}" + (f": {job.error}" if job.error else "")
            return JSONResponse({"error": detail, "state": job.state}, 409)
        return job.result

    @app.get("/examples", summary="Example scenes under the allowed folders, to pick and dub")
    async def examples(authorization: str | None = Header(None)) -> dict:
        from dubops.serving.scene_jobs import example_scenes

        return {"scenes": example_scenes(service(authorization).roots)}

    @app.get("/jobs/{job_id}/segments", summary="A scene job's lines and the state of each")
    async def job_lines(job_id: str, authorization: str | None = Header(None)) -> Any:
        states = service(authorization).line_states(job_id)
        return states if states is not None else _missing(job_id)

    @app.post(
        "/jobs/{job_id}/segments/{number}",
        status_code=202,
        summary="Re-dub one line of a scene job: a new job that redoes only that line",
        responses={200: {}, 400: {}, 401: {}, 404: {}, 429: {}},
    )
    async def redub_line(
        job_id: str,
        number: int,
        request: Request,
        authorization: str | None = Header(None),
        idempotency_key: str | None = Header(None, max_length=200),
    ) -> Any:
        import anyio

        svc = service(authorization)
        changes = await _fields(request)
        job, created = await anyio.to_thread.run_sync(
            svc.redub_job, job_id, number, changes, idempotency_key
        )
        if job is None:
            return _missing(job_id)
        return JSONResponse(job.to_json(), 202 if created else 200)

    @app.delete("/jobs/{job_id}", summary="Cancel a job (its work stops)")
    async def cancel_job(job_id: str, authorization: str | None = Header(None)) -> Any:
        svc = service(authorization)
        job = svc.runner.cancel(job_id)
        return job.to_json() if job is not None else _missing(job_id)

    from dubops.serving.review_page import mount_review_page

    mount_review_page(app)
    return app


def _missing(job_id: str) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": f"job {job_id}: no such job"}, 404)


async def _fields(request: Request) -> dict[str, Any]:
    return fields_from_body(request.headers.get("content-type", ""), await request.body())


def _upload_limit(service: DubbingService) -> int:
    return int(service.settings.max_upload_mb * 2**20)


async def _unless_disconnected(request: Request, work: Any) -> Any:
    """Await ``work``; a client that hangs up cancels it (its dub is abandoned and stops)."""
    import asyncio

    task = asyncio.ensure_future(work)
    while not task.done():
        done, _ = await asyncio.wait({task}, timeout=1.0)
        if not done and await request.is_disconnected():
            task.cancel()
    return task.result()


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
