"""The KServe adapter: ``dubops serve kserve`` serves the dubbing model over v1 and v2.

A thin translation to :class:`~dubops.serving.core.DubbingService`, which does the
batching, limits and metrics the BentoML server shares.

* v1 ``POST /v1/models/dubbing:predict``: ``{"instances": [{"script": ...,
  "video": {"b64": ...}, "prompt": {"b64": ...}, "emotion": ...}]}`` (any wire field;
  ``video_uri`` names a file under ``serving.allowed_roots``) answers
  ``{"predictions": [result + {"audio_b64", "mp4_b64" when asked}]}``.
* v2 ``POST /v2/models/dubbing/infer``: one input per wire field, shape ``[n]``,
  one element per clip. ``video``/``prompt`` elements are base64 text (the v2 binary
  extension mangles mp4), ``video_uri``/``prompt_uri`` allowed paths; an empty element
  means "not given". Outputs (BYTES, ``[n]``): ``audio_b64``, ``result_json`` and
  ``mp4_b64`` when a clip asked for one.

All clips of one request are dubbed as one batch (the batcher merges concurrent
requests too). KServe parses ``sys.argv`` when it is imported, so nothing here
imports it before :func:`serve` has cleared the command line; that is why the model
class is built by :func:`model_class` rather than at module level.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import sys
import threading
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dubops.errors import DubOpsError, InputError
from dubops.serving import wire

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig
    from dubops.serving.core import DubbingService

logger = logging.getLogger(__name__)
SERVER = "kserve"
MODEL_NAME = "dubbing"
_ABSENT = ("", b"", None)  # a v2 element that leaves its field out for that clip


def serve(config: DubOpsConfig) -> None:
    """Run KServe's ``ModelServer`` (one process) until SIGTERM/SIGINT, then drain."""
    import math

    sys.argv = [sys.argv[0]]  # KServe reads its 25 flags from here at import
    import kserve
    from kserve import model_server

    from dubops.serving.core import DubbingService

    settings = config.serving
    logging.getLogger("kserve").addFilter(_not_ready_noise)
    model = model_class()(DubbingService(config, server=SERVER, jobs=False))
    _install(model_server.app, model.service)
    server = kserve.ModelServer(
        http_port=settings.port,
        grpc_port=settings.grpc_port or 8081,
        enable_grpc=bool(settings.grpc_port),
        workers=1,
        # uvicorn lets in-flight requests finish for this long after SIGTERM.
        grace_period=math.ceil(settings.request_timeout_s),
    )
    # KServe 0.21 only registers models that are ready at start, and its server
    # readiness ignores the models; register it loading, and make /v2/health/ready
    # say what the open inference protocol means by it (every model ready).
    server.register_model(model)
    base_ready = server.dataplane.ready

    async def ready() -> bool:
        return bool(model.ready) and await base_ready()

    server.dataplane.ready = ready
    model.start()
    logger.info("KServe on port %d (gRPC %s)", settings.port, settings.grpc_port or "off")
    try:
        server.start([])  # signals: uvicorn drains, then KServe unloads (model.stop)
    finally:
        model.stop()


@functools.cache
def model_class() -> type:
    """:class:`DubbingKServeModel`, defined on first use (importing kserve parses argv)."""
    import kserve

    class DubbingKServeModel(kserve.Model):
        """The ``dubbing`` model: loads in the background, so readiness is honest."""

        def __init__(self, service: DubbingService, name: str = MODEL_NAME) -> None:
            super().__init__(name)
            self.service = service
            self._loader: threading.Thread | None = None
            self._closed = False

        def load(self) -> bool:
            """Start loading (once); ``ready`` turns true when the pipeline is in."""
            if self._loader is None:
                self._loader = threading.Thread(target=self._load, name="dubops-load")
                self._loader.daemon = True
                self._loader.start()
            return bool(self.ready)

        def start(self) -> None:  # KServe's default would claim ready at once
            self.load()

        def _load(self) -> None:
            try:
                self.service.load()
            except Exception:  # readiness stays false; the log says why
                logger.exception("loading the model failed")
                return
            self.ready = True

        def stop(self) -> None:
            """Stop taking work and finish what is queued (once)."""
            self.ready = False
            if not self._closed:
                self._closed = True
                self.service.close(drain=True)
                logger.info("dubbing model stopped")

        async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
            try:
                self.service.check_token((headers or {}).get("authorization"))
                if isinstance(payload, kserve.InferRequest):
                    return await self._v2(payload)
                return await self._v1(payload)
            except Exception as exc:
                self.service.metrics.count_error(SERVER, type(exc).__name__)
                raise

        async def _v1(self, payload: Any) -> dict[str, Any]:
            instances = payload.get("instances") if isinstance(payload, Mapping) else None
            if not isinstance(instances, list) or not instances:
                raise InputError(
                    'instances: expected a non-empty list of clips, e.g. [{"script": ..., '
                    '"video": {"b64": ...}, "prompt": {"b64": ...}}]'
                )
            dubbed = await self._dub(instances, "instances")
            return {"predictions": [{**wire.result_json(r, ids), **_media(r)} for r, ids in dubbed]}

        async def _v2(self, request: Any) -> Any:
            columns = {i.name: _elements(i) for i in request.inputs}
            sizes = {len(values) for values in columns.values()}
            if len(sizes) != 1:
                shapes = {name: len(values) for name, values in columns.items()}
                raise InputError(f"inputs: give every input one element per clip; got {shapes}")
            clips = [
                dict(_v2_field(k, v[i]) for k, v in columns.items() if v[i] not in _ABSENT)
                for i in range(sizes.pop())
            ]
            dubbed = await self._dub(clips, "clip")
            media = [_media(r) for r, _ in dubbed]
            outputs = {
                "audio_b64": [m["audio_b64"] for m in media],
                "result_json": [json.dumps(wire.result_json(r, ids)) for r, ids in dubbed],
            }
            if any("mp4_b64" in m for m in media):
                outputs["mp4_b64"] = [m.get("mp4_b64", "") for m in media]
            return kserve.InferResponse(
                response_id=request.id or uuid.uuid4().hex,
                model_name=self.name,
                model_version=self.service.model_version or None,
                infer_outputs=[
                    kserve.InferOutput(k, [len(v)], "BYTES", data=v) for k, v in outputs.items()
                ],
            )

        async def _dub(self, clips: list[Any], where: str) -> list[Any]:
            limit = self.service.settings.max_queue
            if len(clips) > limit:
                raise wire.PayloadTooLargeError(
                    f"{where}: {len(clips)} clips is over the {limit} one request takes"
                )
            requests = []
            for i, fields in enumerate(clips):
                try:
                    if not isinstance(fields, Mapping):
                        raise InputError("expected an object of fields")
                    requests.append(await asyncio.to_thread(self.service.request, fields))
                except DubOpsError as exc:  # keep the type (its status), say which clip
                    exc.args = (f"{where}[{i}]: {exc}",)
                    raise
            return await self.service.dub(requests, keep_files=False)

    return DubbingKServeModel


def _not_ready_noise(record: logging.LogRecord) -> bool:
    """KServe logs each not-ready answer with a traceback: while loading, probes expect it."""
    exc = record.exc_info[1] if record.exc_info else None
    return type(exc).__name__ not in ("ModelNotReady", "ServerNotReady")


def _elements(tensor: Any) -> list[Any]:
    """A v2 input's elements, flat (BYTES from REST are str, from gRPC bytes)."""
    try:
        return list(tensor.as_numpy().reshape(-1).tolist())
    except (ValueError, TypeError) as exc:
        raise InputError(f"{tensor.name}: data does not fit shape {tensor.shape} ({exc})") from None


def _v2_field(name: str, value: Any) -> tuple[str, Any]:
    """A v2 element as a wire field: ``video`` text is base64 (``video_b64``), ``video``
    bytes (gRPC) the file itself; every other name is the wire's own."""
    if name in wire.MEDIA and isinstance(value, str):
        return f"{name}_b64", value
    return name, value


def _media(result: Any) -> dict[str, str]:
    from dubops.audio import wav_bytes

    media = {"audio_b64": base64.b64encode(wav_bytes(result.wave, result.sample_rate)).decode()}
    if result.mp4:
        media["mp4_b64"] = base64.b64encode(result.mp4).decode()
    return media


def _install(app: Any, service: DubbingService) -> None:
    """Our errors answered with their status (KServe would say 500), every answer counted,
    bodies over the limit refused while they stream in."""
    from dubops.serving.http_common import Hygiene, error_response

    async def answer(request: Any, exc: Exception) -> Any:
        return error_response(exc, service, SERVER)

    app.add_exception_handler(DubOpsError, answer)
    app.add_middleware(Hygiene, get_service=lambda: service, server=SERVER, limit=_body_limit)


def _body_limit(service: DubbingService) -> int:
    """Two base64 media per clip (4/3 each) for a full batch, with room for the JSON."""
    settings = service.settings
    return int(settings.max_upload_mb * 2**20 * 3 * settings.max_queue)
