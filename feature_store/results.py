"""What a footage query returns: per modality, the top-K clips and their matched audio.

Authentic-Dubber retrieves with each basic emotion (scene, face, text) separately
and finds each retrieved clip's direct-emotion audio by index lookup; the
progressive graph links those audio nodes to the basic node whose query found them,
so the hits stay grouped by query modality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ModalityHits:
    """The top-K of one modality's query, best first.

    Shapes: ``k`` hits, ``d`` vector size (256).
    """

    clip_ids: list[str]
    similarities: np.ndarray  # (k,) cosine similarity
    emotions: list[str]
    speakers: list[str]
    audio_vectors: np.ndarray  # (k, d) float32, the hits' audio emotion vectors
    audio_paths: list[str]

    def __len__(self) -> int:
        return len(self.clip_ids)

    def to_json(self) -> dict[str, Any]:
        return {
            "clip_ids": list(self.clip_ids),
            "similarities": [float(s) for s in self.similarities],
            "emotions": list(self.emotions),
            "speakers": list(self.speakers),
            "audio_paths": list(self.audio_paths),
            "audio_vectors": np.asarray(self.audio_vectors, dtype=np.float32).tolist(),
        }


@dataclass
class RetrievedFootage:
    """One query's hits, keyed by modality ("scene", "face", "text")."""

    modalities: dict[str, ModalityHits] = field(default_factory=dict)

    def to_json(self, include_vectors: bool = True) -> dict[str, Any]:
        out = {}
        for name, hits in self.modalities.items():
            data = hits.to_json()
            if not include_vectors:
                data.pop("audio_vectors")
            out[name] = data
        return out
