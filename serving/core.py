"""What both servers wrap: the loaded pipeline, its batcher, the jobs, the files, the metrics.

:class:`DubbingService` is protocol-free; ``serving/kserve_model.py`` and
``serving/bento_service.py`` only translate HTTP to its calls. Sync dubs go through
:class:`~dubops.serving.batcher.AdaptiveBatcher`; jobs run on their own
:class:`~dubops.serving.jobs.JobRunner` threads, so a long job never makes a sync
call wait for it, and both share one loaded model.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dubops.serving import wire

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig
    from dubops.inference.request import DubRequest
    from dubops.inference.result import DubResult
    from dubops.serving.jobs import Job

logger = logging.getLogger(__name__)
TOKEN_ENV = "DUBOPS_API_TOKEN"


class DubbingService:
    """One served model: sync dubbing with adaptive batching, durable jobs, result files.

    Args:
        config: the whole config (``serving`` section: limits, batching, state folder).
        server: the metrics' ``server`` label (``kserve`` or ``bento``).
        jobs: run the job API (BentoML does; KServe has no job protocol).
    """

    def __init__(self, config: DubOpsConfig, server: str, jobs: bool = True) -> None:
        from dubops.monitoring.metrics import serving_metrics
        from dubops.serving.artifacts import ArtifactStore

        self.config = config
        self.settings = config.serving
        self.server = server
        self.state_dir = Path(self.settings.state_dir).resolve()
        self.artifacts = ArtifactStore(
            self.state_dir / "artifacts", ttl_s=self.settings.artifact_ttl_hours * 3600
        )
        self.uploads = self.state_dir / "uploads"
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.roots = [Path(r).resolve() for r in self.settings.allowed_roots] + [self.uploads]
        self.metrics = serving_metrics()
        self.pipeline: Any = None
        self.batcher: Any = None
        self.runner: Any = None
        self.store: Any = None
        self.with_jobs = jobs
        self.drift: Any = None
        self.model_version = ""
        self.model_id = ""  # what the scene line cache keys on (dubops.scenes)
        self.scene_progress: dict[str, dict[int, str]] = {}  # running scene jobs, per line
        self._loaded = threading.Event()

    # -- life cycle ------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._loaded.is_set()

    def load(self) -> None:
        """Load the model, start the batcher (and the job runner, resuming its jobs)."""
        import torch

        from dubops.inference.loading import load_pipeline
        from dubops.serving.batcher import AdaptiveBatcher

        if self.settings.torch_threads:
            torch.set_num_threads(self.settings.torch_threads)
        self.artifacts.prune()
        self.metrics.set_loaded(self.server, False)
        self.pipeline, info = load_pipeline(
            self.config, self.settings.model, self.settings.library_dir
        )
        # One spelling everywhere (results, metrics, KServe's model_version): "dubbing/3".
        self.model_version = str(self.pipeline.model_version or info.get("version") or "")
        from dubops.scenes.scene_dubbing import model_fingerprint

        library = self.settings.library_dir
        self.model_id = model_fingerprint(
            self.settings.model, info, [Path(library) if library else None]
        )
        self.batcher = AdaptiveBatcher(
            self._dub_many,
            max_batch_size=self.settings.max_batch_size,
            max_latency_s=self.settings.max_latency_ms / 1000,
            max_queue=self.settings.max_queue,
            on_batch=lambda n: self.metrics.observe_batch(self.server, n),
        )
        if self.with_jobs:
            from dubops.serving.jobs import JobRunner, JobStore

            self.store = JobStore(self.state_dir / "jobs.sqlite")
            self.runner = JobRunner(
                self.store,
                self._run_job,
                workers=self.settings.job_workers,
                max_attempts=self.settings.job_attempts,
                on_outcome=self.metrics.count_job,
            )
        self.drift = self._drift_monitor()
        self.metrics.set_queue_capacity(self.server, "sync", self.settings.max_queue)
        if self.with_jobs:
            self.metrics.set_queue_capacity(self.server, "jobs", self.settings.max_jobs_queued)
        if self.settings.warm_up:
            self._warm_up()
        if self.runner is not None:  # after the warm-up: a resumed job meets a warm model
            self.runner.start()
        self.metrics.set_model(self.server, self.model_version, self.settings.model)
        self._loaded.set()
        logger.info("serving %s (version %s)", self.settings.model, self.model_version or "-")

    def _drift_monitor(self) -> Any:
        """The request log and online drift against the bundle's reference (if it has one)."""
        from dubops.monitoring.online import DriftMonitor
        from dubops.monitoring.reference import ReferenceProfile
        from dubops.monitoring.request_log import RequestLog

        watch = self.config.monitoring
        log = RequestLog(
            Path(watch.log_dir) if watch.log_dir else self.state_dir / "requests",
            max_rows=watch.log_max_rows,
            keep_files=watch.log_keep_files,
        )
        bundle = getattr(self.pipeline, "bundle", None)
        path = bundle.drift_reference if bundle is not None else None
        reference = ReferenceProfile.load(path) if watch.drift and path is not None else None
        if watch.drift and reference is None:
            logger.warning(
                "%s has no drift reference: requests are logged, drift is not "
                "scored (re-run the pipeline to register one)",
                self.settings.model,
            )
        self.metrics.set_drift(self.server, None, 0)
        return DriftMonitor(
            reference,
            lambda report, size: self.metrics.set_drift(self.server, report, size),
            log=log,
            every=watch.update_every,
            server=self.server,
            model_version=self.model_version,
        )

    def _warm_up(self) -> None:
        """Dub one synthetic second before saying ready: the parts that load on first use
        (the text encoder, kernels) load now, not in a client's request time."""
        import numpy as np

        from dubops.inference.request import DubRequest

        rng = np.random.default_rng(0)
        frames = np.full((25, 96, 96, 3), 128, dtype=np.uint8)
        prompt = (0.1 * rng.standard_normal(self.pipeline.sample_rate)).astype(np.float32)
        request = DubRequest(
            video=frames,
            fps=25,
            prompt=prompt,
            prompt_rate=self.pipeline.sample_rate,
            script="Ready.",
            clip_id="warm-up",
            nfe=2,
        )
        tick = time.perf_counter()
        try:
            self.pipeline.dub(request)
        except Exception:  # serving may still work; the first request will tell
            logger.warning("the warm-up dub failed", exc_info=True)
            return
        logger.info("warmed up in %.1f s", time.perf_counter() - tick)

    def close(self, drain: bool = True) -> None:
        """Stop taking work; finish (``drain``) what is in flight."""
        timeout = self.settings.request_timeout_s
        if self.batcher is not None:
            self.batcher.close(drain=drain, timeout=timeout)
        if self.runner is not None:
            self.runner.stop(drain=drain, timeout=timeout)
        if self.drift is not None:
            self.drift.close()
        if self.pipeline is not None:
            self.pipeline.close()

    # -- checks ----------------------------------------------------------------------

    def check_token(self, authorization: str | None) -> None:
        """Refuse a request without the bearer token, when ``DUBOPS_API_TOKEN`` is set."""
        import hmac

        token = os.environ.get(TOKEN_ENV)
        if not token:
            return
        scheme, _, given = (authorization or "").partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise wire.UnauthorizedError(
                "authorization: missing or wrong bearer token; send 'Authorization: Bearer <token>'"
            )

    def request(self, fields: Mapping[str, Any], sync: bool = True) -> DubRequest:
        """Wire fields to a checked request (sync requests: short videos only)."""
        max_bytes = int(self.settings.max_upload_mb * 2**20)
        request = wire.request_from_fields(fields, self.roots, max_bytes)
        if sync:
            seconds = _video_seconds(request.video)
            if seconds is not None and seconds > self.settings.max_sync_seconds:
                raise wire.PayloadTooLargeError(
                    f"video: {seconds:.1f} s is over the {self.settings.max_sync_seconds:g} s "
                    "a sync dub takes; send it to POST /jobs"
                )
        return request

    # -- sync dubbing ----------------------------------------------------------------

    async def dub(
        self, requests: list[DubRequest], keep_files: bool = True
    ) -> list[tuple[DubResult, dict[str, str]]]:
        """Dub through the batcher (the event loop keeps serving meanwhile); with
        ``keep_files`` the wav (and mp4) are stored as artifacts and their ids returned
        (KServe answers with the bytes inline and keeps nothing)."""
        import asyncio

        timeout = self.settings.request_timeout_s
        self.metrics.set_queue_depth(self.server, "sync", self.batcher.depth + len(requests))
        results = await asyncio.gather(*(self.batcher.dub_async(r, timeout) for r in requests))
        self.metrics.set_queue_depth(self.server, "sync", self.batcher.depth)
        return [(r, self.artifacts.put_result(r) if keep_files else {}) for r in results]

    def _dub_many(self, requests: list[DubRequest]) -> list[DubResult]:
        results = self.pipeline.dub_many(requests)
        for result in results:
            self.observe(result)
        return results

    def observe(self, result: DubResult) -> None:
        """A served dub's metrics, and its record to the drift window and request log."""
        self.metrics.observe_result(self.server, result)
        self.drift.observe(result.features, result.query_vectors)

    # -- jobs ------------------------------------------------------------------------

    def submit_job(
        self, fields: Mapping[str, Any], idempotency_key: str | None
    ) -> tuple[Job, bool]:
        """Keep the media on disk and queue a job (the same key twice: one job); the job
        and whether this call created it (``False``: an earlier call with the key did)."""
        self._check_room()
        from dubops.serving.scene_jobs import is_scene, scene_job_request

        if is_scene(fields):
            return self._queue(scene_job_request(self, fields), idempotency_key)
        request = self.request(fields, sync=False)
        stored: dict[str, Any] = {
            k: v for k, v in request.model_dump().items() if k not in ("video", "prompt")
        }
        stored["clip_id"] = request.clip_id or "clip"  # not the upload's file name
        for name in ("video", "prompt"):
            value = getattr(request, name)
            stored[name] = str(value if isinstance(value, Path) else self.keep_upload(value))
        return self._queue(stored, idempotency_key)

    def redub_job(
        self, job_id: str, number: int, changes: Mapping[str, Any], idempotency_key: str | None
    ) -> tuple[Job | None, bool]:
        """Queue a re-dub of one line of scene job ``job_id`` (the parent's inputs, this
        line's changes); the line cache makes it redo that line only. ``(None, False)``
        for an unknown job."""
        from dubops.serving.scene_jobs import redub_request

        self._check_room()
        parent = self.store.get(job_id)
        if parent is None:
            return None, False
        return self._queue(redub_request(parent.request, number, changes), idempotency_key)

    def line_states(self, job_id: str) -> dict[str, Any] | None:
        """A scene job's lines and the state of each (queued, cached, dubbing, done)."""
        job = self.store.get(job_id)
        if job is None:
            return None
        if job.result is not None and "segments" in job.result:
            states = {str(s["number"]): "cached" if s["cached"] else "done"
                      for s in job.result["segments"]}  # fmt: skip
        else:
            states = {str(n): v for n, v in self.scene_progress.get(job_id, {}).items()}
        return {"id": job_id, "state": job.state, "lines": states}

    def _check_room(self) -> None:
        """429 before any upload is kept when the job queue is full."""
        if self.store.queued_count() >= self.settings.max_jobs_queued:
            from dubops.serving.batcher import QueueFullError

            raise QueueFullError(self.store.queued_count(), 60.0)

    def _queue(self, stored: dict[str, Any], idempotency_key: str | None) -> tuple[Job, bool]:
        job, created = self.store.create(stored, idempotency_key)
        if created:
            self.runner.notify()
        return job, created

    def keep_upload(self, data: bytes) -> Path:
        path = self.uploads / hashlib.sha256(data).hexdigest()
        if not path.is_file():
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return path

    def _run_job(self, job: Job, report: Any, should_stop: Any) -> dict[str, Any]:
        from dubops.cancellation import stop_when
        from dubops.inference.result import STAGES

        if job.request.get("kind") == "scene":
            from dubops.serving.scene_jobs import run_scene_job

            progress = self.scene_progress.setdefault(job.id, {})
            try:
                with stop_when(should_stop):
                    return run_scene_job(self, job, report, progress)
            finally:
                self.scene_progress.pop(job.id, None)
        fields = dict(job.request)
        fields["video"], fields["prompt"] = Path(fields["video"]), Path(fields["prompt"])
        stages = [s for s in STAGES if s != "mux" or fields.get("mp4")]

        def on_stage(name: str) -> None:
            done = stages.index(name) if name in stages else 0
            report(name, done / len(stages))

        self.metrics.set_queue_depth(self.server, "jobs", self.store.queued_count() + 1)
        with stop_when(should_stop):
            result = self.pipeline.dub(fields, on_stage=on_stage)
        self.observe(result)
        self.metrics.set_queue_depth(self.server, "jobs", self.store.queued_count())
        return wire.result_json(result, self.artifacts.put_result(result))


def _video_seconds(video: Any) -> float | None:
    """The container's stated duration (cheap; decoding errors are read_media's to report)."""
    import av

    if not isinstance(video, bytes | Path):
        return None
    try:
        source = io.BytesIO(video) if isinstance(video, bytes) else str(video)
        with av.open(source) as container:
            return container.duration / 1e6 if container.duration else None
    except Exception:  # a corrupt file: read_media names the problem
        return None
