"""Emotion-similarity retrieval from the Reference Footage Library (Authentic-Dubber's ESRG).

Each basic emotion vector of the target (scene, face, text) queries its own
modality by cosine similarity for the top-K footage clips; each hit's matched
direct-emotion audio vector is then found by index lookup on its clip id.
Retrieval is speaker-agnostic by default (the paper's best setting); ``speakers``
restricts a query to given speakers' footage (the paper's speaker-specific
setting). The text vector is ``[self/sqrt2; react/sqrt2]``, so one cosine equals
the paper's mean of the self and react cosines.

Three interchangeable backends: ``numpy`` (exact, in memory, the serving default),
``milvus`` (pymilvus on the Milvus Lite store) and ``feast`` (Feast online SDK).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dubops.errors import InputError
from dubops.feature_store.backend import QueryFilter, SearchBackend
from dubops.feature_store.layout import (
    BUILD_HINT,
    MODALITIES,
    QUERY_MODALITIES,
    LibraryError,
    LibraryLayout,
)
from dubops.feature_store.results import ModalityHits, RetrievedFootage

logger = logging.getLogger(__name__)

BACKENDS = ("numpy", "milvus", "feast")


@dataclass(frozen=True)
class LibraryInfo:
    """What library.json records: version, footage size and splits, provenance."""

    version: str
    size: int
    splits: list[str]
    clips: int
    dim: int
    extractor_versions: dict[str, str] = field(default_factory=dict)
    manifest_hash: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)


class FootageLibrary:
    """A built library opened with one search backend; see the module docstring."""

    def __init__(
        self,
        layout: LibraryLayout,
        info: LibraryInfo,
        backend: SearchBackend,
        max_overfetch: int = 64,
    ):
        self.layout = layout
        self.info = info
        self.backend = backend
        self.max_overfetch = max_overfetch
        self._clips: dict[str, Any] | None = None

    @classmethod
    def open(
        cls,
        library_dir: str | Path,
        backend: str = "numpy",
        *,
        extractors_dir: str | Path | None = None,
        milvus_uri: str | None = None,
    ) -> FootageLibrary:
        """Open a built library.

        Args:
            library_dir: the folder `dubops library build` wrote.
            backend: ``numpy``, ``milvus`` or ``feast``.
            extractors_dir: when given, the library must have been built from these
                extractors' versions (else it is stale: a :class:`LibraryError`).
            milvus_uri: a `milvus-lite server` URI shared by several processes,
                instead of opening the library's Milvus Lite folder in-process.

        Raises:
            LibraryError: the library (or its online store) is missing or stale;
                the message names `dubops library build`.
        """
        if backend not in BACKENDS:
            raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")
        layout = LibraryLayout(Path(library_dir))
        raw = layout.read_info()
        layout.check_files(
            feast=backend == "feast", milvus_store=backend != "numpy" and milvus_uri is None
        )
        if extractors_dir is not None:
            _check_fresh(layout, raw, Path(extractors_dir))
        info = LibraryInfo(
            version=raw["version"],
            size=int(raw["size"]),
            splits=list(raw["footage_splits"]),
            clips=int(raw["clips"]),
            dim=int(raw["dim"]),
            extractor_versions=dict(raw.get("extractor_versions", {})),
            manifest_hash=raw.get("manifest_hash", ""),
            raw=raw,
        )
        max_overfetch = int(raw.get("library_config", {}).get("max_overfetch", 64))
        if backend == "numpy":
            from dubops.feature_store.numpy_backend import NumpyBackend

            impl: SearchBackend = NumpyBackend.from_parquet(layout.footage)
        elif backend == "milvus":
            from dubops.feature_store.milvus_backend import MilvusBackend

            store = None if milvus_uri else layout.online_store
            impl = MilvusBackend(store=store, uri=milvus_uri, max_overfetch=max_overfetch)
        else:
            from dubops.feature_store.feast_backend import FeastBackend

            impl = FeastBackend(layout.repo, uri=milvus_uri)
        logger.info(
            "opened footage library %s (%d clips, %s backend)", layout.root, info.size, backend
        )
        return cls(layout, info, impl, max_overfetch)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> FootageLibrary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(
        self,
        scene: np.ndarray,
        face: np.ndarray,
        text: np.ndarray,
        k: int = 3,
        exclude_speakers: Collection[str] = (),
        exclude_clips: Collection[str] = (),
        speakers: Collection[str] | None = None,
    ) -> RetrievedFootage:
        """Top-``k`` per modality for one target (each vector (d,)); see :meth:`query_batch`."""
        return self.query_batch(
            np.asarray(scene)[None],
            np.asarray(face)[None],
            np.asarray(text)[None],
            k=k,
            exclude_speakers=[exclude_speakers],
            exclude_clips=[exclude_clips],
            speakers=[speakers],
        )[0]

    def query_batch(
        self,
        scene: np.ndarray,
        face: np.ndarray,
        text: np.ndarray,
        k: int = 3,
        exclude_speakers: Sequence[Collection[str]] | None = None,
        exclude_clips: Sequence[Collection[str]] | None = None,
        speakers: Sequence[Collection[str] | None] | None = None,
    ) -> list[RetrievedFootage]:
        """Top-``k`` per modality for ``b`` targets.

        Args:
            scene, face, text: (b, d) basic emotion vectors of the targets.
            k: hits per modality (fewer only when fewer clips are eligible).
            exclude_speakers: per query, speakers whose footage is skipped.
            exclude_clips: per query, clip ids never returned (pass the target's own
                id when it is in the library: training clips must not retrieve themselves).
            speakers: per query, None (speaker-agnostic) or the only speakers allowed.

        Returns:
            One :class:`RetrievedFootage` per target.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        queries = {"scene": scene, "face": face, "text": text}
        b = None
        for name, value in queries.items():
            value = np.asarray(value, dtype=np.float32)
            if value.ndim != 2 or value.shape[1] != self.info.dim:
                raise ValueError(f"{name} must have shape (b, {self.info.dim}), got {value.shape}")
            if b is not None and value.shape[0] != b:
                raise ValueError(
                    f"scene, face and text need the same batch size; {name} has {value.shape[0]}"
                )
            b = value.shape[0]
            queries[name] = value
        filters = _filters(b, exclude_speakers, exclude_clips, speakers)
        per_modality = {m: self.backend.search(m, queries[m], k, filters) for m in QUERY_MODALITIES}
        # Matched direct-emotion audio: one index lookup for every hit of the batch.
        hit_ids = sorted({c for hits in per_modality.values() for h in hits for c in h.clip_ids})
        audio = (
            dict(zip(hit_ids, self.backend.audio_vectors(hit_ids), strict=True)) if hit_ids else {}
        )
        out = []
        for i in range(b):
            modalities = {}
            for m in QUERY_MODALITIES:
                raw = per_modality[m][i]
                vectors = (
                    np.stack([audio[c] for c in raw.clip_ids]).astype(np.float32)
                    if raw.clip_ids
                    else np.zeros((0, self.info.dim), np.float32)
                )
                modalities[m] = ModalityHits(
                    raw.clip_ids,
                    raw.similarities,
                    raw.emotions,
                    raw.speakers,
                    vectors,
                    raw.audio_paths,
                )
            out.append(RetrievedFootage(modalities))
        return out

    def clip_vectors(self, clip_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors of any corpus clip (all splits), modality -> (n, d), in order asked."""
        table = self._clip_table()
        index = table["_index"]
        unknown = [c for c in clip_ids if c not in index]
        if unknown:
            raise ValueError(
                f"clip_ids {unknown[:5]} are not in the library's corpus; "
                f"{BUILD_HINT.format(path=self.layout.root)} for this corpus"
            )
        rows = [index[c] for c in clip_ids]
        return {m: table[f"{m}_vector"][rows] for m in MODALITIES}

    def clip_labels(self, clip_ids: Sequence[str] | None = None) -> list[dict[str, str]]:
        """clip_id, split, speaker, emotion and audio_path of corpus clips (default: all)."""
        table = self._clip_table()
        ids = list(clip_ids) if clip_ids is not None else table["clip_id"]
        names = ("clip_id", "split", "speaker", "emotion", "audio_path")
        return [{n: table[n][table["_index"][c]] for n in names} for c in ids]

    def _clip_table(self) -> dict[str, Any]:
        if self._clips is None:
            from dubops.feature_store.numpy_backend import read_vector_table

            table = read_vector_table(self.layout.clips)
            table["_index"] = {c: i for i, c in enumerate(table["clip_id"])}
            self._clips = table
        return self._clips


def _filters(
    b: int,
    exclude_speakers: Sequence[Collection[str]] | None,
    exclude_clips: Sequence[Collection[str]] | None,
    speakers: Sequence[Collection[str] | None] | None,
) -> list[QueryFilter]:
    for name, value in (
        ("exclude_speakers", exclude_speakers),
        ("exclude_clips", exclude_clips),
        ("speakers", speakers),
    ):
        if value is not None and len(value) != b:
            raise ValueError(f"{name} needs one entry per query ({b}), got {len(value)}")
        if value is not None and any(isinstance(v, str) for v in value):
            raise ValueError(f"{name} entries must be collections of ids, not strings")
    return [
        QueryFilter(
            exclude_clips=frozenset(exclude_clips[i]) if exclude_clips is not None else frozenset(),
            exclude_speakers=frozenset(exclude_speakers[i])
            if exclude_speakers is not None
            else frozenset(),
            speakers=frozenset(speakers[i])
            if speakers is not None and speakers[i] is not None
            else None,
        )
        for i in range(b)
    ]


def current_extractor_versions(extractors_dir: Path) -> dict[str, str]:
    """The versions of the trained extractors in a folder (what a fresh build would record)."""
    from dubops.emotion.footage_vectors import extractor_versions

    return extractor_versions(extractors_dir)


def _check_fresh(layout: LibraryLayout, raw: dict[str, Any], extractors_dir: Path) -> None:
    current = current_extractor_versions(extractors_dir)
    built = raw.get("extractor_versions", {})
    if current != built:
        changed = sorted(k for k in set(current) | set(built) if current.get(k) != built.get(k))
        raise LibraryError(
            f"footage library {layout.root} is stale: extractors {changed} in {extractors_dir} "
            f"changed since it was built; {BUILD_HINT.format(path=layout.root)}"
        )
