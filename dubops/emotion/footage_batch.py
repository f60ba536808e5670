"""Retrieval results as the tensors the progressive graph reads, computed once and cached.

For each target clip: its basic vectors S, F, T (``FootageLibrary.clip_vectors``,
which holds every corpus clip), and per query modality the top-K hits of
``FootageLibrary.query_batch`` (Authentic-Dubber's ESRG): the hits' own vectors of
that modality (indirect nodes) and their matched audio vectors (direct nodes).

Retrieval is a fixed function of the library: the same clip, K and library
version always retrieve the same footage, so the graph stage retrieves every
train and val clip once and caches the tensors, in memory and in a safetensors
file keyed by the library version (a rebuilt library has a new version and gets
a new file). During training the query clip is always excluded, so a clip never
retrieves itself; test clips are not footage and exclude nothing. A clip
outside the library (a new video at inference) queries with the vectors the
extractors give it (:func:`query_footage`).

Shapes: ``c`` clips, ``k`` hits per modality, ``d`` vector size.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dubops.emotion.graph_settings import QUERY_MODALITIES

logger = logging.getLogger(__name__)

_TENSORS = ("basic", "indirect", "audio", "similarity", "hit_mask")


@dataclass
class FootageTensors:
    """Graph inputs of ``c`` clips, rows in ``clip_ids`` order.

    ``basic (c, 3, d)``, ``indirect (c, 3, k, d)``, ``audio (c, 3, k, d)``,
    ``similarity (c, 3, k)``, ``hit_mask (c, 3, k)`` bool (False: no hit; zeros).
    """

    clip_ids: list[str]
    basic: torch.Tensor
    indirect: torch.Tensor
    audio: torch.Tensor
    similarity: torch.Tensor
    hit_mask: torch.Tensor

    def __post_init__(self) -> None:
        self._rows = {c: i for i, c in enumerate(self.clip_ids)}

    @property
    def k(self) -> int:
        return int(self.hit_mask.shape[-1])

    def batch(self, clip_ids: Sequence[str]) -> dict[str, torch.Tensor]:
        """The model input for some clips, in the order asked (a ``footage`` batch entry)."""
        missing = [c for c in clip_ids if c not in self._rows]
        if missing:
            raise KeyError(f"no footage retrieved for clips {missing[:5]}")
        rows = torch.tensor([self._rows[c] for c in clip_ids], dtype=torch.long)
        return {name: getattr(self, name)[rows] for name in _TENSORS}

    def save(self, path: Path, version: str) -> None:
        """Write atomically: a temp file renamed into place."""
        from safetensors.torch import save_file

        from dubops.fileio import atomic_path

        meta = {"library_version": version, "clip_ids": json.dumps(self.clip_ids)}
        tensors = {name: getattr(self, name).contiguous() for name in _TENSORS}
        tensors["hit_mask"] = tensors["hit_mask"].to(torch.uint8)
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path: Path) -> tuple[FootageTensors, str]:
        """-> (tensors, the library version they were retrieved from)."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            tensors = {name: f.get_tensor(name) for name in _TENSORS}
        tensors["hit_mask"] = tensors["hit_mask"].bool()
        return cls(json.loads(meta["clip_ids"]), **tensors), meta["library_version"]


def retrieve_footage(
    library: Any,
    clip_ids: Sequence[str],
    k: int,
    exclude_self: bool,
    batch_size: int = 256,
) -> FootageTensors:
    """Query the library for every clip (speaker-agnostic, top-``k`` per modality).

    Args:
        library: an open :class:`dubops.feature_store.retrieval.FootageLibrary`.
        clip_ids: corpus clips (any split: the library stores every clip's vectors).
        k: hits per modality (``library.k``).
        exclude_self: exclude each query clip from its own results (training clips
            are footage themselves).
        batch_size: queries per ``query_batch`` call.
    """
    ids = list(clip_ids)
    if not ids:
        raise ValueError("retrieve_footage needs at least one clip id")
    parts = []
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        vectors = library.clip_vectors(chunk)
        exclude = [[cid] for cid in chunk] if exclude_self else None
        parts.append(query_footage(library, chunk, vectors, k, exclude)[0])
    footage = FootageTensors(
        ids, *(torch.cat([getattr(p, name) for p in parts]) for name in _TENSORS)
    )
    short = int((~footage.hit_mask).any(dim=(1, 2)).sum())
    if short:
        logger.warning(
            "%d of %d clips retrieved fewer than k=%d hits in a modality", short, len(ids), k
        )
    return footage


def query_footage(
    library: Any,
    clip_ids: Sequence[str],
    vectors: dict[str, np.ndarray],
    k: int,
    exclude_clips: Sequence[Sequence[str]] | None = None,
) -> tuple[FootageTensors, list[Any]]:
    """Graph inputs of clips given by their own basic vectors, in the library or not.

    A clip that is not in the library (a new video embedded by the extractors at
    request time) has no stored vectors: its ``scene``, ``face`` and ``text`` rows
    are the query and its basic nodes alike.

    Args:
        library: an open :class:`dubops.feature_store.retrieval.FootageLibrary`.
        clip_ids: names of the ``c`` query clips (rows of the result).
        vectors: ``{"scene", "face", "text"}`` -> ``(c, d)`` unit float32 rows.
        k: hits per modality.
        exclude_clips: per query, library clips it must not retrieve (its own id
            when it is footage itself).

    Returns:
        ``(tensors, the library's RetrievedFootage per clip)``; the second keeps the
        hits' ids and similarities for a response or a log.
    """
    ids = list(clip_ids)
    c, dim = len(ids), int(library.info.dim)
    for name in QUERY_MODALITIES:
        shape = np.shape(vectors[name])
        if shape != (c, dim):
            raise ValueError(f"{name} vectors must have shape ({c}, {dim}), got {shape}")
    basic = np.zeros((c, 3, dim), np.float32)
    indirect = np.zeros((c, 3, k, dim), np.float32)
    audio = np.zeros((c, 3, k, dim), np.float32)
    similarity = np.zeros((c, 3, k), np.float32)
    hit_mask = np.zeros((c, 3, k), bool)
    for m, name in enumerate(QUERY_MODALITIES):
        basic[:, m] = vectors[name]
    results = library.query_batch(
        basic[:, 0], basic[:, 1], basic[:, 2], k=k, exclude_clips=exclude_clips
    )
    hit_ids = sorted({h for r in results for hits in r.modalities.values() for h in hits.clip_ids})
    hit_vectors = library.clip_vectors(hit_ids) if hit_ids else {}
    hit_row = {h: i for i, h in enumerate(hit_ids)}
    for i, result in enumerate(results):
        for m, name in enumerate(QUERY_MODALITIES):
            hits = result.modalities[name]
            n = min(len(hits.clip_ids), k)
            assert exclude_clips is None or not set(exclude_clips[i]) & set(hits.clip_ids), ids[i]
            rows = [hit_row[h] for h in hits.clip_ids[:n]]
            if n:
                indirect[i, m, :n] = hit_vectors[name][rows]
                audio[i, m, :n] = np.asarray(hits.audio_vectors, np.float32)[:n]
                similarity[i, m, :n] = np.asarray(hits.similarities, np.float32)[:n]
                hit_mask[i, m, :n] = True
    tensors = FootageTensors(
        ids,
        torch.from_numpy(basic),
        torch.from_numpy(indirect),
        torch.from_numpy(audio),
        torch.from_numpy(similarity),
        torch.from_numpy(hit_mask),
    )
    return tensors, results


def cached_footage(
    library: Any,
    clip_ids: Sequence[str],
    k: int,
    cache_dir: str | Path,
    exclude_self: bool = True,
) -> FootageTensors:
    """:func:`retrieve_footage` through a cache file keyed by library version, K and exclusion.

    A cache file is reused only when it was retrieved from the same library
    version and holds every clip asked for; otherwise retrieval runs again and
    replaces it.
    """
    version = str(library.info.version)
    mode = "loo" if exclude_self else "all"
    path = Path(cache_dir) / f"footage-{version[:16]}-k{k}-{mode}.safetensors"
    if path.is_file():
        cached, cached_version = FootageTensors.load(path)
        if cached_version == version and set(clip_ids) <= set(cached.clip_ids):
            logger.info("footage of %d clips from the cache %s", len(clip_ids), path)
            return cached
    footage = retrieve_footage(library, clip_ids, k, exclude_self)
    footage.save(path, version)
    logger.info("retrieved footage of %d clips (k=%d) -> %s", len(clip_ids), k, path)
    return footage
