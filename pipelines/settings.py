"""Training-pipeline settings: pydantic only, so loading a config never imports kfp."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PipelineConfig(_Section):
    """The ``pipeline`` section of ``DubOpsConfig`` (filled by the Training pipeline issue)."""

    name: str = Field("dubops-training", description="pipeline name in Kubeflow and MLflow")
