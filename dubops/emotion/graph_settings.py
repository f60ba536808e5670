"""Progressive emotion graph settings: pydantic only, so loading a config never imports torch."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GraphConfig(_Section):
    """The progressive graph, its aggregation and the graph-synthesizer stage (``graph``)."""

    dim: int = Field(256, gt=0, description="node and output size (Authentic-Dubber: 256)")
