"""Reference Footage Library settings: pydantic only, so loading a config never imports feast.

The ``library`` section of ``DubOpsConfig``; it lives in the library's config so the
config never imports the feature store (``dubops.feature_store.settings`` re-exports it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from dubops.config.section import Section
from dubops.data.schema import SPLITS

Backend = Literal["numpy", "milvus", "feast"]


class LibraryConfig(Section):
    """The footage library (the ``library`` section of ``DubOpsConfig``).

    Only ``footage_splits`` (and the extractors' ``emotion.dim``) change what a build
    writes, so only they enter the library version (see
    :func:`dubops.feature_store.build.library_version`); the rest are query-time choices.
    """

    k: int = Field(3, ge=1, description="top-K per modality (Authentic-Dubber: 3)")
    footage_splits: list[str] = Field(
        default_factory=lambda: ["train"],
        description="splits whose clips go into the online store (what retrieval may return)",
    )
    query_splits: list[str] = Field(
        default_factory=lambda: ["test_s1", "test_s2"],
        description="splits whose clips are the queries of `dubops library evaluate`",
    )
    backend: Backend = Field(
        "numpy",
        description="serving backend: numpy (exact, in memory, fastest up to ~100k clips), "
        "milvus (pymilvus on the Milvus Lite store) or feast (Feast online SDK)",
    )
    milvus_uri: str | None = Field(
        None,
        description="a `milvus-lite server` URI (http://host:19530) shared by several workers; "
        "None opens the library's Milvus Lite folder in-process (one process only)",
    )
    max_overfetch: int = Field(
        64,
        ge=0,
        description="milvus backend: up to this many excluded clips per query are over-fetched "
        "and dropped after the search (exact); more go into the search expression",
    )

    @field_validator("footage_splits", "query_splits")
    @classmethod
    def _known_splits(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in SPLITS]
        if unknown or not value:
            raise ValueError(f"splits must be a non-empty subset of {list(SPLITS)}, got {value}")
        return value
