"""Registry and promotion-gate settings: pydantic only, so loading a config never imports mlflow."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dubops.config.section import Section


class GatedMetric(Section):
    """One metric the gate compares: the challenger may be worse by at most ``tolerance``."""

    metric: str
    direction: Literal["higher", "lower"]
    tolerance: float = Field(0.0, ge=0.0, description="allowed regression, in the metric's units")


def _default_gates() -> list[GatedMetric]:
    # The papers' headline metrics (DeepDubber-V1 Tables 1-3, Authentic-Dubber Table 1), with
    # tolerances about one clip's worth of noise on the tiny corpus's 119 test clips: one clip
    # moves an accuracy by 0.0084, so 0.01-0.02 forgives a clip or two and no real regression.
    return [
        GatedMetric(metric="emo_acc", direction="higher", tolerance=0.02),
        GatedMetric(metric="spk_sim_target", direction="higher", tolerance=1.0),  # percent
        GatedMetric(metric="mcd_dtw", direction="lower", tolerance=1.0),  # dB
        GatedMetric(metric="wer", direction="lower", tolerance=0.02),
        GatedMetric(metric="lse_abs_offset_frames", direction="lower", tolerance=0.25),
        GatedMetric(metric="reasoner_scene_type_accuracy", direction="higher", tolerance=0.01),
        GatedMetric(metric="reasoner_format_validity", direction="higher", tolerance=0.0),
    ]


class RegistryConfig(Section):
    """The ``registry`` section of ``DubOpsConfig``: the registered model and its gate."""

    model_name: str = Field("dubbing", description="the one registered model: the dubbing bundle")
    gated_metrics: list[GatedMetric] = Field(
        default_factory=_default_gates,
        description="what the promotion gate compares (challenger vs champion, or vs baselines)",
    )
    history_limit: int = Field(
        50, ge=2, description="champion history entries kept in the registered model's tags"
    )
    lock_timeout_s: float = Field(
        120.0, gt=0, description="how long a promotion waits for another one to finish"
    )
    lock: Literal["auto", "file", "tracking-server"] = Field(
        "auto",
        description="what serialises promotions: `file` (flock, one host's processes), "
        "`tracking-server` (a ticket queue in the registry: any host that reaches the server); "
        "auto: file for a SQLite or file store, tracking-server for any other (http, a database)",
    )
    # Renewed every quarter lease while held, so it bounds how long a dead holder blocks
    # the queue, not how long a promotion (seconds, the gate included) may take.
    lock_lease_s: float = Field(
        120.0,
        gt=0,
        description="tracking-server lock: a holder that stops renewing for this long is "
        "taken as dead and the next promotion takes over",
    )
    lock_dir: str | None = Field(
        None,
        description="file lock: the lock file's folder; default: beside a SQLite store, else "
        "the system temp folder (a file lock serialises the processes of one host only)",
    )

    @model_validator(mode="after")
    def _unique_metrics(self) -> RegistryConfig:
        names = [g.metric for g in self.gated_metrics]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"registry.gated_metrics lists {twice} more than once; keep one each")
        return self
