"""The servers' settings (the ``serving`` section): limits, batching, where state lives.

Pydantic only, so loading a config never imports KServe or BentoML. The API token is
not a setting: it comes from the ``DUBOPS_API_TOKEN`` environment variable (a secret in
the cluster), so it never lands in a logged config.
"""

from __future__ import annotations

from pydantic import Field

from dubops.config.section import Section


class ServingConfig(Section):
    """``dubops serve kserve|bento``: what both servers share."""

    model: str = Field(
        "models:/dubbing@champion",
        description="what to serve: a models:/ URI (alias or version), a bundle or run folder",
    )
    library_dir: str | None = Field(
        None, description="footage library folder (default: the one the bundle names)"
    )
    host: str = Field("127.0.0.1", description="BentoML's bind address (KServe binds 0.0.0.0)")
    port: int = Field(3000, ge=1, le=65535, description="HTTP port")
    grpc_port: int | None = Field(
        None, ge=1, le=65535, description="KServe's gRPC port; None: gRPC off"
    )
    max_batch_size: int = Field(
        8, ge=1, le=64, description="clips per dub_many call (1: adaptive batching off)"
    )
    max_latency_ms: float = Field(
        100.0, ge=0, description="how long a batch's first request waits for company"
    )
    max_queue: int = Field(
        16, ge=1, description="sync requests waiting for the model; past it: 429 + Retry-After"
    )
    request_timeout_s: float = Field(
        300.0, gt=0, description="a sync request's limit: 504, and its work stops"
    )
    max_upload_mb: float = Field(64.0, gt=0, description="request body limit: 413 past it")
    max_sync_seconds: float = Field(
        30.0, gt=0, description="longest video /dub takes (longer: POST /jobs)"
    )
    job_workers: int = Field(1, ge=1, description="threads running jobs (apart from /dub)")
    max_jobs_queued: int = Field(
        256, ge=1, description="jobs waiting; past it POST /jobs answers 429"
    )
    job_attempts: int = Field(
        2, ge=1, description="runs a job gets when restarts interrupt it, then it fails"
    )
    state_dir: str = Field(
        "outputs/serving",
        description="jobs.sqlite and the artifacts (outside BentoML's home, which it wipes)",
    )
    artifact_ttl_hours: float = Field(
        24.0, gt=0, description="how long result files stay fetchable before they are deleted"
    )
    allowed_roots: list[str] = Field(
        default_factory=list, description="folders a request may name media in (default: none)"
    )
    warm_up: bool = Field(
        True, description="dub one synthetic second before /readyz says ready (first-use loads)"
    )
    torch_threads: int | None = Field(
        None, ge=1, description="torch threads per server process (None: torch's default)"
    )
