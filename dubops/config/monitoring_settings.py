"""Monitoring's settings (the ``monitoring`` section): the drift reference and the request log.

Pydantic only, like every section. The reference is built at evaluation time with
``window``, ``alpha`` and ``draws`` and travels in the bundle, so a server scores
drift with the thresholds its model was calibrated for.
"""

from __future__ import annotations

from pydantic import Field

from dubops.config.section import Section


class MonitoringConfig(Section):
    """Drift reference, online drift and the request log."""

    window: int = Field(
        20, ge=2, description="served dubs per drift window (the reference calibrates for it)"
    )
    alpha: float = Field(
        0.05, gt=0, lt=1, description="family-wise chance a same-distribution window is flagged"
    )
    draws: int = Field(2000, ge=100, description="random splits that calibrate the thresholds")
    embedding_dims: int = Field(8, ge=1, description="principal axes kept per query embedding")
    reference_splits: list[str] = Field(
        default_factory=lambda: ["val", "test_s1", "test_s2"],
        description="held-out splits whose clips make the reference",
    )
    reference_max_clips: int | None = Field(
        None, gt=0, description="reference clips at most (None: every clip of the splits)"
    )
    drift: bool = Field(True, description="score online drift in the servers")
    update_every: int = Field(1, ge=1, description="score the window once per this many dubs")
    log_dir: str | None = Field(
        None, description="request log folder (None: <serving.state_dir>/requests)"
    )
    log_max_rows: int = Field(50_000, ge=1, description="rows per log segment before rotating")
    log_keep_files: int = Field(10, ge=1, description="log segments kept (the oldest go)")
