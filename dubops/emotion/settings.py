"""Emotion-extractor settings: pydantic only, so loading a config never imports torch."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExtractorsConfig(_Section):
    """The four emotion extractors (the ``emotion`` section of ``DubOpsConfig``)."""

    dim: int = Field(256, gt=0, description="every emotion vector's size (Authentic-Dubber: 256)")
