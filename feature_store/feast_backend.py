"""Top-K through the Feast online SDK (``retrieve_online_documents_v2`` on Milvus Lite).

Two Feast 0.67 behaviours shape this module (both seen on our store):

* the rows come back with the entity-key column out of step with the feature
  columns (the features and the distance of one hit stay together; the
  ``clip_id`` key column is ordered differently), and not sorted by distance. So
  the clip id is read from the stored ``footage_id`` feature, the set of keys is
  asserted to equal the set of stored ids, and the hits are sorted by distance;
* the vector column echoes the *query* embedding, not the stored vector, and
  ``FeatureStore.retrieve_online_documents_v2`` defaults to ``distance_metric="L2"``
  (the index is COSINE), so the metric is always passed.

Feast has no batched document search: a batch is a loop of single searches.
Exclusions and speaker restrictions go into Feast's filter models, which the
Milvus store turns into a search expression, so no over-fetching is needed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dubops.feature_store.backend import (
    MAX_LIMIT,
    TIE_MARGIN,
    QueryFilter,
    RawHits,
    tie_group_cut,
    top_k_sorted,
)
from dubops.feature_store.layout import quiet_milvus_lite, view_name

logger = logging.getLogger(__name__)


def _feast_filter(flt: QueryFilter):
    from feast.filter_models import ComparisonFilter, CompoundFilter

    parts = []
    if flt.speakers is not None:
        parts.append(ComparisonFilter(key="speaker", value=sorted(flt.speakers), type="in"))
    if flt.exclude_speakers:
        parts.append(
            ComparisonFilter(key="speaker", value=sorted(flt.exclude_speakers), type="nin")
        )
    if flt.exclude_clips:
        parts.append(
            ComparisonFilter(key="footage_id", value=sorted(flt.exclude_clips), type="nin")
        )
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else CompoundFilter(type="and", filters=parts)


def open_feature_store(repo: Path, uri: str | None = None):
    """The library's ``FeatureStore``; with ``uri``, its online store is a Milvus server."""
    from feast import FeatureStore
    from feast.repo_config import load_repo_config

    quiet_milvus_lite()
    if uri is None:
        return FeatureStore(repo_path=str(repo))
    config = load_repo_config(repo, repo / "feature_store.yaml")
    config.online_store.uri = uri  # Feast connects remotely when a uri is set
    config.online_store.path = ""
    return FeatureStore(repo_path=str(repo), config=config)


class FeastBackend:
    """Search through the Feast SDK, re-aligned by the stored clip id."""

    name = "feast"

    def __init__(self, repo: Path, uri: str | None = None) -> None:
        self.store = open_feature_store(repo, uri)

    def search(
        self, modality: str, queries: np.ndarray, k: int, filters: list[QueryFilter]
    ) -> list[RawHits]:
        view = view_name(modality)
        features = [f"{view}:{modality}_vector"] + [
            f"{view}:{name}" for name in ("footage_id", "speaker", "emotion", "audio_path")
        ]
        out = []
        for query, flt in zip(np.asarray(queries, dtype=np.float32), filters, strict=True):
            if flt.empty:
                out.append(RawHits.empty())
                continue
            limit = k + TIE_MARGIN
            while True:
                hits, fetched = self._search_one(features, query, k, limit, flt)
                # A tie group cut by top_k (duplicate vectors): widen until it closes.
                if limit >= MAX_LIMIT or not tie_group_cut(fetched, hits.similarities, k, limit):
                    break
                limit = min(limit * 4, MAX_LIMIT)
            out.append(hits)
        return out

    def _search_one(
        self, features: list[str], query: np.ndarray, k: int, limit: int, flt: QueryFilter
    ) -> tuple[RawHits, np.ndarray]:
        """One document search; the best ``k`` re-aligned by the stored id, and all distances."""
        response = self.store.retrieve_online_documents_v2(
            features=features,
            query=query.tolist(),
            top_k=limit,
            distance_metric="COSINE",
            filters=_feast_filter(flt),
        ).to_dict()
        ids = [str(c) for c in response.get("footage_id", [])]
        keys = [str(c) for c in response.get("clip_id", ids)]
        # Alignment: every returned key is one of the stored ids, once.
        assert sorted(keys) == sorted(ids), f"Feast keys {keys} != stored ids {ids}"
        sims = np.asarray(response.get("distance", []), dtype=np.float32)
        order = top_k_sorted(ids, sims, k)
        hits = RawHits(
            [ids[i] for i in order],
            sims[order],
            [response["speaker"][i] for i in order],
            [response["emotion"][i] for i in order],
            [response["audio_path"][i] for i in order],
        )
        return hits, sims

    def audio_vectors(self, clip_ids: list[str]) -> np.ndarray:
        view = view_name("audio")
        response = self.store.get_online_features(
            features=[f"{view}:audio_vector", f"{view}:footage_id"],
            entity_rows=[{"clip_id": c} for c in clip_ids],
        ).to_dict()
        stored = response["footage_id"]
        if list(stored) != list(clip_ids):
            raise KeyError(f"Feast returned audio rows {stored[:5]} for clips {clip_ids[:5]}")
        return np.asarray(response["audio_vector"], dtype=np.float32).reshape(len(clip_ids), -1)

    def close(self) -> None:
        self.store = None
