"""Registry and promotion-gate settings: pydantic only, so loading a config never imports mlflow."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GatedMetric(_Section):
    """One metric the gate compares: the challenger may be worse by at most ``tolerance``."""

    metric: str
    direction: Literal["higher", "lower"]
    tolerance: float = Field(0.0, ge=0.0, description="allowed regression, in the metric's units")


class RegistryConfig(_Section):
    """The ``registry`` section of ``DubOpsConfig`` (filled by the Training pipeline issue)."""

    model_name: str = Field("dubbing", description="the one registered model: the dubbing bundle")
