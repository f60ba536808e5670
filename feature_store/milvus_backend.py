"""pymilvus straight on the library's Milvus Lite store (the collections Feast created).

Sharing: Milvus Lite 3.x runs in-process (a gRPC server thread per data folder,
reused by every client of that folder in the process), so Feast's client and this
one share the store inside one process. A second *process* is refused (the engine
holds an exclusive ``flock`` on ``<store>/LOCK``): several server workers either
share one ``milvus-lite server --data-dir <library>/feature_repo/data/online_store.db``
through ``library.milvus_uri``, or each loads the NumPy backend from the Parquet.

Filters: speaker restrictions go into the search expression, batched per distinct
expression; clip exclusions (the graph stage excludes each training clip's own id)
are over-fetched by their count and dropped afterwards, which stays exact, and go
into the expression only when there are more than ``max_overfetch`` of them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from dubops.feature_store.backend import (
    MAX_LIMIT,
    TIE_MARGIN,
    QueryFilter,
    RawHits,
    milvus_expression,
    tie_group_cut,
    top_k_sorted,
)
from dubops.feature_store.layout import (
    BUILD_HINT,
    MODALITIES,
    LibraryError,
    collection_name,
    quiet_milvus_lite,
    vector_field,
)

logger = logging.getLogger(__name__)

_OUTPUT = ["footage_id", "speaker", "emotion", "audio_path"]


class MilvusBackend:
    """Top-K through ``MilvusClient.search`` on the Feast-created collections."""

    name = "milvus"

    def __init__(self, store: Path | None = None, uri: str | None = None, max_overfetch: int = 64):
        from pymilvus import MilvusClient

        quiet_milvus_lite()

        if (store is None) == (uri is None):
            raise ValueError("MilvusBackend needs exactly one of store (a path) or uri")
        self.client = MilvusClient(uri if uri is not None else str(store))
        self.max_overfetch = max_overfetch
        load_collections(self.client)

    def search(
        self, modality: str, queries: np.ndarray, k: int, filters: list[QueryFilter]
    ) -> list[RawHits]:
        queries = np.asarray(queries, dtype=np.float32)
        out: list[RawHits | None] = [None] * len(filters)
        # Group the queries that share one filter expression into one batched search.
        groups: dict[str | None, list[int]] = defaultdict(list)
        for i, flt in enumerate(filters):
            if flt.empty:
                out[i] = RawHits.empty()
                continue
            clips = (
                flt.exclude_clips if len(flt.exclude_clips) > self.max_overfetch else frozenset()
            )
            groups[milvus_expression(flt.speakers, flt.exclude_speakers, clips)].append(i)
        for expression, rows in groups.items():
            extra = max(
                (
                    len(filters[i].exclude_clips)
                    for i in rows
                    if len(filters[i].exclude_clips) <= self.max_overfetch
                ),
                default=0,
            )
            limit = k + extra + TIE_MARGIN
            results = self._search(modality, [queries[i] for i in rows], limit, expression)
            for i, hits in zip(rows, results, strict=True):
                packed, cut = _pack(hits, filters[i], k, limit)
                # A tie group cut by the limit (duplicate vectors): widen until it closes.
                wider = limit
                while cut and wider < MAX_LIMIT:
                    wider = min(wider * 4, MAX_LIMIT)
                    (hits,) = self._search(modality, [queries[i]], wider, expression)
                    packed, cut = _pack(hits, filters[i], k, wider)
                out[i] = packed
        return [hits if hits is not None else RawHits.empty() for hits in out]

    def _search(self, modality: str, vectors: list, limit: int, expression: str | None) -> list:
        return self.client.search(
            collection_name=collection_name(modality),
            data=[np.asarray(v, dtype=np.float32).tolist() for v in vectors],
            anns_field=vector_field(modality),
            limit=limit,
            filter=expression or "",
            output_fields=_OUTPUT,
            search_params={"metric_type": "COSINE"},
        )

    def audio_vectors(self, clip_ids: list[str]) -> np.ndarray:
        # A primary-key get: a `footage_id in [...]` filter scans every row (~0.6 s at 100k).
        unique = sorted(set(clip_ids))
        rows = self.client.get(
            collection_name=collection_name("audio"),
            ids=[feast_primary_key(c) for c in unique],
            output_fields=["footage_id", vector_field("audio")],
        )
        found = {
            r["footage_id"]: np.asarray(r[vector_field("audio")], dtype=np.float32) for r in rows
        }
        missing = [c for c in unique if c not in found]
        if missing:
            raise KeyError(f"audio vectors missing from the online store for {missing[:5]}")
        if not clip_ids:
            return np.zeros((0, 0), np.float32)
        return np.stack([found[c] for c in clip_ids])

    def close(self) -> None:
        self.client.close()


def feast_primary_key(clip_id: str) -> str:
    """The Milvus primary key Feast gives a clip: its serialised entity key, hex-encoded."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=["clip_id"], entity_values=[Value(string_val=clip_id)])
    return serialize_entity_key(key, entity_key_serialization_version=3).hex()


def load_collections(client) -> None:
    """Load the four collections (a reopened Milvus Lite store starts with them released)."""
    from pymilvus.client.types import LoadState

    existing = set(client.list_collections())
    for modality in MODALITIES:
        name = collection_name(modality)
        if name not in existing:
            raise LibraryError(f"the online store has no collection {name}; {BUILD_HINT}")
        if client.get_load_state(name).get("state") != LoadState.Loaded:
            client.load_collection(name)


def _pack(hits: list, flt: QueryFilter, k: int, limit: int) -> tuple[RawHits, bool]:
    """Drop over-fetched exclusions, keep the best ``k``; also say whether to fetch more."""
    rows = [h["entity"] for h in hits]
    sims = np.array([h["distance"] for h in hits], dtype=np.float32)  # COSINE: similarity
    keep = [i for i, r in enumerate(rows) if flt.allows(r["footage_id"], r["speaker"])]
    ids = [rows[i]["footage_id"] for i in keep]
    order = [keep[j] for j in top_k_sorted(ids, sims[keep], k)]
    packed = RawHits(
        [rows[i]["footage_id"] for i in order],
        sims[order],
        [rows[i]["speaker"] for i in order],
        [rows[i]["emotion"] for i in order],
        [rows[i]["audio_path"] for i in order],
    )
    return packed, tie_group_cut(sims, sims[order], k, limit)
