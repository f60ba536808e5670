"""The serving metrics, one definition for both servers (KServe and BentoML).

``prometheus_client`` is imported inside :func:`serving_metrics`, never at module
import: BentoML runs prometheus_client in multiprocess mode and only sees metrics
created after it has set that mode up, so a service module that imported it
eagerly would hide ours. Gauges therefore carry a ``multiprocess_mode``.

Latency buckets reach 30 minutes: a long clip takes minutes on CPU, and
BentoML's own buckets stop at 180 s.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

# Seconds: sub-second steps to half-hour jobs.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800)
# Compute seconds per second of speech.
RTF_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


@dataclass
class ServingMetrics:
    """The metric objects; :func:`serving_metrics` makes them once per process."""

    requests: Any
    request_seconds: Any
    stage_seconds: Any
    real_time_factor: Any
    batch_size: Any
    queue_depth: Any
    jobs: Any
    fallbacks: Any
    errors: Any
    model_info: Any
    model_loaded: Any
    dubs: Any
    queue_capacity: Any
    feature_drift: Any
    feature_drift_score: Any
    drift_window_size: Any
    # (feature, method) pairs each server has published a score for
    _scored: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    def observe_request(
        self, server: str, endpoint: str, method: str, code: int, seconds: float
    ) -> None:
        self.requests.labels(server, endpoint, method, str(code)).inc()
        self.request_seconds.labels(server, endpoint).observe(seconds)

    def observe_result(self, server: str, result: Any) -> None:
        """A :class:`DubResult`'s per-stage seconds, real-time factor and fallback."""
        for stage, seconds in result.seconds.items():
            self.stage_seconds.labels(server, stage).observe(seconds)
        if result.duration > 0 and "total" in result.seconds:
            self.real_time_factor.labels(server).observe(result.seconds["total"] / result.duration)
        self.dubs.labels(server).inc()
        if result.fallback:
            self.fallbacks.labels(server).inc()

    def observe_batch(self, server: str, size: int) -> None:
        self.batch_size.labels(server).observe(size)

    def set_queue_depth(self, server: str, queue: str, depth: int) -> None:
        self.queue_depth.labels(server, queue).set(depth)

    def set_queue_capacity(self, server: str, queue: str, capacity: int) -> None:
        self.queue_capacity.labels(server, queue).set(capacity)

    def set_drift(self, server: str, report: dict[str, dict[str, Any]] | None, size: int) -> None:
        """A drift report's statistic and score per feature (None: the window is filling).

        A feature scored before but not now (no values in this window), and every
        feature while the window refills, reads NaN: a stale score would keep an
        alert firing on data that has left the window. (NaN, not a removed series:
        BentoML's multiprocess files keep what a process once wrote.)
        """
        self.drift_window_size.labels(server).set(size)
        rows = report or {}
        for feature, method in self._scored.get(server, set()) - {
            (f, r["method"]) for f, r in rows.items()
        }:
            self.feature_drift.labels(server, feature, method).set(float("nan"))
            self.feature_drift_score.labels(server, feature, method).set(float("nan"))
        for feature, row in rows.items():
            self.feature_drift.labels(server, feature, row["method"]).set(row["statistic"])
            self.feature_drift_score.labels(server, feature, row["method"]).set(row["score"])
        self._scored.setdefault(server, set()).update((f, r["method"]) for f, r in rows.items())

    def count_job(self, outcome: str) -> None:
        self.jobs.labels(outcome).inc()

    def count_error(self, server: str, kind: str) -> None:
        self.errors.labels(server, kind).inc()

    def set_loaded(self, server: str, loaded: bool) -> None:
        self.model_loaded.labels(server).set(1 if loaded else 0)

    def set_model(self, server: str, version: str, uri: str) -> None:
        """The loaded model's version (an info gauge) and loaded = 1."""
        self.model_info.labels(server, version or "", uri).set(1)
        self.set_loaded(server, True)


_lock = threading.Lock()
_metrics: ServingMetrics | None = None


def serving_metrics() -> ServingMetrics:
    """The process's metrics, registered on prometheus_client's default registry."""
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = _create()
        return _metrics


def _create() -> ServingMetrics:
    from prometheus_client import Counter, Gauge, Histogram

    return ServingMetrics(
        requests=Counter(
            "dubops_requests",
            "HTTP requests by endpoint and status code",
            ["server", "endpoint", "method", "code"],
        ),
        request_seconds=Histogram(
            "dubops_request_seconds",
            "Wall seconds per request",
            ["server", "endpoint"],
            buckets=LATENCY_BUCKETS,
        ),
        stage_seconds=Histogram(
            "dubops_stage_seconds",
            "Seconds per dubbing step (a clip's share of its batch)",
            ["server", "stage"],
            buckets=LATENCY_BUCKETS,
        ),
        real_time_factor=Histogram(
            "dubops_real_time_factor",
            "Compute seconds per second of dubbed speech",
            ["server"],
            buckets=RTF_BUCKETS,
        ),
        batch_size=Histogram(
            "dubops_batch_size", "Clips per dub_many call", ["server"], buckets=BATCH_BUCKETS
        ),
        queue_depth=Gauge(
            "dubops_queue_depth",
            "Requests or jobs waiting or running",
            ["server", "queue"],
            multiprocess_mode="livesum",
        ),
        jobs=Counter("dubops_jobs", "Finished jobs by outcome", ["outcome"]),
        fallbacks=Counter(
            "dubops_reasoner_fallbacks",
            "Dubs whose reasoner answer could not be parsed",
            ["server"],
        ),
        errors=Counter("dubops_errors", "Failed requests by error type", ["server", "type"]),
        model_info=Gauge(
            "dubops_model_info",
            "The served model version (value 1)",
            ["server", "model_version", "model_uri"],
            multiprocess_mode="liveall",
        ),
        model_loaded=Gauge(
            "dubops_model_loaded",
            "1 once the pipeline is loaded",
            ["server"],
            multiprocess_mode="liveall",
        ),
        dubs=Counter("dubops_dubs", "Clips dubbed (sync and jobs)", ["server"]),
        queue_capacity=Gauge(
            "dubops_queue_capacity",
            "Requests or jobs a queue takes before refusing",
            ["server", "queue"],
            multiprocess_mode="livemax",
        ),
        feature_drift=Gauge(
            "dubops_feature_drift",
            "Drift statistic of the last window against the model's reference "
            "(psi: categories, ks: scalars, mmd: embeddings)",
            ["server", "feature", "method"],
            multiprocess_mode="livemax",
        ),
        feature_drift_score=Gauge(
            "dubops_feature_drift_score",
            "Drift statistic over its calibrated threshold (above 1: drifted at the "
            "reference's family-wise false-alarm rate)",
            ["server", "feature", "method"],
            multiprocess_mode="livemax",
        ),
        drift_window_size=Gauge(
            "dubops_drift_window_size",
            "Served dubs in the drift window",
            ["server"],
            multiprocess_mode="livemax",
        ),
    )
