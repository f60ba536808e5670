"""Authentic-Dubber's retrieval at inference: embed a new clip, query the footage library.

A clip to dub is in no library, so the bundle's scene, face and text extractors
embed it and those vectors query the library the graph was trained with
(cosine top-K per modality). The ``oracle_footage`` evaluation row uses the
vectors the library already stores for a corpus clip instead, which isolates
what the extractors lose on new input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dubops.emotion.graph_settings import QUERY_MODALITIES


@dataclass
class Retrieval:
    """Graph inputs of a batch and, per clip, its hits as plain data."""

    tensors: Any  # dubops.emotion.footage_batch.FootageTensors, rows in batch order
    hits: list[dict[str, list[dict[str, Any]]]]


class FootageRetriever:
    """The library, its K and the extractors that embed a clip the library lacks."""

    def __init__(self, library: Any, k: int, extractors: dict[str, Any] | None) -> None:
        self.library = library
        self.k = k
        self.extractors = extractors  # None: only the library's stored vectors (oracle)

    def embed(
        self,
        names: Sequence[str],
        frames: Sequence[np.ndarray],
        scripts: Sequence[str],
        reacts: Sequence[str],
        sample_rate: int,
    ) -> list[dict[str, np.ndarray]]:
        """Each clip's scene, face and text vectors ``(d,)``, one extractor call per modality."""
        from dubops.emotion.extractors.base import ClipInputs
        from dubops.errors import InputError

        if self.extractors is None:
            raise InputError(
                "this model was loaded without its extractors: only oracle_footage requests "
                "(the library's stored vectors) can be dubbed; load it from a bundle"
            )
        inputs = [
            ClipInputs(clip_id=n, frames=f, script=s, react=r, sample_rate=sample_rate)
            for n, f, s, r in zip(names, frames, scripts, reacts, strict=True)
        ]
        rows = {m: self.extractors[m].embed(inputs) for m in QUERY_MODALITIES}
        return [{m: rows[m][i] for m in QUERY_MODALITIES} for i in range(len(inputs))]

    def stored(self, clip_ids: Sequence[str]) -> list[dict[str, np.ndarray]]:
        """The vectors the library holds for corpus clips (the oracle's query)."""
        from dubops.errors import InputError

        try:
            table = self.library.clip_vectors(list(clip_ids))
        except ValueError as exc:
            raise InputError(f"clip_id: {exc}; oracle_footage needs a corpus clip") from None
        return [{m: table[m][i] for m in QUERY_MODALITIES} for i in range(len(clip_ids))]

    def retrieve(
        self,
        names: Sequence[str],
        vectors: Sequence[dict[str, np.ndarray]],
        exclude: Sequence[str | None],
    ) -> Retrieval:
        """One batched library query; ``exclude[i]`` is a clip id clip i must not retrieve."""
        from dubops.emotion.footage_batch import query_footage

        rows = {
            m: np.stack([np.asarray(v[m], np.float32) for v in vectors]) for m in QUERY_MODALITIES
        }
        skip = [[e] if e else [] for e in exclude]
        tensors, results = query_footage(self.library, list(names), rows, self.k, skip)
        hits = [
            {
                m: [
                    {"clip_id": c, "similarity": round(float(s), 4), "emotion": e}
                    for c, s, e in zip(h.clip_ids, h.similarities, h.emotions, strict=True)
                ]
                for m, h in result.modalities.items()
            }
            for result in results
        ]
        return Retrieval(tensors, hits)

    def close(self) -> None:
        self.library.close()
