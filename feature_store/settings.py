"""Reference Footage Library settings: pydantic only, so loading a config never imports feast."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LibraryConfig(_Section):
    """The footage library (the ``library`` section of ``DubOpsConfig``)."""

    k: int = Field(3, ge=1, description="top-K per modality (Authentic-Dubber: 3)")
