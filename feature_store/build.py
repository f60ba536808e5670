"""Build the Reference Footage Library: vectors -> Parquet -> Feast apply -> Milvus Lite.

The library version is a hash of what a build depends on (extractor versions,
manifest hash, the build-relevant library settings): a rebuild with the same
version does nothing, a new extractor version rebuilds. Everything is written to
a temp folder beside the target and renamed into place, so a failed build never
leaves a half library (and a running reader of the old one keeps its files). Only a
folder a build made (it has a ``library.json``) is replaced: a non-empty folder
without one may be a user's, and the build refuses it before it touches anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dubops.feature_store.feast_repo import (
    EVENT_TIME,
    StageProgress,
    apply_and_materialise,
    copy_repo_template,
)
from dubops.feature_store.layout import (
    LABEL_COLUMNS,
    LIBRARY_FORMAT,
    MODALITIES,
    LibraryLayout,
    vector_field,
)
from dubops.fileio import replace_dir, write_json

if TYPE_CHECKING:
    import pandas as pd

    from dubops.config import DubOpsConfig
    from dubops.feature_store.settings import LibraryConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildReport:
    """What a build did."""

    path: Path
    version: str
    built: bool  # False: the library was already at this version
    footage: int = 0
    clips: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] | None = None


def library_version(
    extractor_versions: dict[str, str], manifest_hash: str, config: LibraryConfig, dim: int
) -> str:
    """A short hash of everything a build depends on."""
    payload = {
        "format": LIBRARY_FORMAT,
        "extractors": dict(sorted(extractor_versions.items())),
        "manifest": manifest_hash,
        "library": {"footage_splits": sorted(config.footage_splits), "dim": dim},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def vectors_hash(vectors: pd.DataFrame) -> str:
    """A content hash of injected vectors, standing in for extractor versions."""
    digest = hashlib.sha256()
    for column in ("clip_id", "emotion", "speaker"):
        digest.update("\x1f".join(map(str, vectors[column])).encode())
    for m in MODALITIES:
        digest.update(
            np.ascontiguousarray(np.stack(vectors[m].to_numpy()), dtype=np.float32).tobytes()
        )
    return digest.hexdigest()[:16]


def build_library(
    config: DubOpsConfig,
    data_dir: str | Path,
    out_dir: str | Path,
    extractors_dir: str | Path | None = None,
    vectors: pd.DataFrame | None = None,
    versions: dict[str, str] | None = None,
    progress: StageProgress | None = None,
    force: bool = False,
) -> BuildReport:
    """Build (or confirm up to date) the footage library of a corpus.

    Args:
        config: the whole config (``library`` section, and the extractors' settings).
        data_dir: the corpus folder (its manifest hash enters the version).
        out_dir: the library folder to create or replace: missing, empty, or a
            library a build made (any other folder is refused, see
            :meth:`LibraryLayout.check_replaceable`).
        extractors_dir: trained extractors (``dubops train extractors``); needed
            unless ``vectors`` is given.
        vectors: injected vectors (tests, benchmarks): one row per clip with
            clip_id, split, speaker, emotion, audio_path and scene/face/text/audio
            arrays of size ``emotion.dim``, L2-normalised.
        versions: extractor versions for injected vectors (default: a content hash).
        progress: ``progress(stage, done, total)`` for the extract/write/apply/materialise stages.
        force: rebuild even when the version is unchanged.

    Returns:
        A :class:`BuildReport`; ``built`` is False when nothing had changed.

    Raises:
        InputError: ``out_dir`` is a file, or a non-empty folder that is not a library.
    """
    from dubops.data.layout import CorpusLayout, manifest_hash

    lib = config.library
    corpus = CorpusLayout(Path(data_dir))
    if not corpus.manifest.is_file():
        raise FileNotFoundError(f"--data: no manifest at {corpus.manifest}; pass a corpus folder")
    if vectors is None:
        if extractors_dir is None:
            raise ValueError(
                "--extractors: pass the trained extractors folder (`dubops train extractors`)"
            )
        from dubops.emotion.footage_vectors import extractor_versions

        versions = extractor_versions(Path(extractors_dir))
    elif versions is None:
        versions = {"injected": vectors_hash(vectors)}
    version = library_version(versions, manifest_hash(corpus.manifest), lib, config.emotion.dim)
    layout = LibraryLayout(Path(out_dir))
    layout.check_replaceable("--out")  # before minutes of extraction, not after
    if not force and _is_current(layout, version):
        logger.info("footage library %s is already at version %s", layout.root, version)
        return BuildReport(layout.root, version, built=False)

    if vectors is None:
        from dubops.emotion.footage_vectors import extract_footage_vectors

        vectors = extract_footage_vectors(
            config,
            Path(data_dir),
            Path(extractors_dir),
            progress=(lambda d, t: progress("extract", d, t)) if progress else None,
        )
    dim = len(vectors["scene"].iloc[0])
    if dim != config.emotion.dim:
        raise ValueError(f"vectors have size {dim}, emotion.dim is {config.emotion.dim}")
    meta = {"extractor_versions": versions, "manifest_hash": manifest_hash(corpus.manifest)}
    return write_library(layout.root, vectors, version, lib, meta=meta, progress=progress)


def write_library(
    out_dir: str | Path,
    vectors: pd.DataFrame,
    version: str,
    lib: LibraryConfig,
    meta: dict[str, Any] | None = None,
    progress: StageProgress | None = None,
    online: bool = True,
) -> BuildReport:
    """Write a library folder from a vectors frame (temp folder, then rename).

    ``online=False`` writes only the Parquet files (enough for the NumPy backend;
    the benchmark uses it for sizes too large to materialise).
    """
    start = time.perf_counter()
    target = Path(out_dir)
    LibraryLayout(target).check_replaceable("--out")
    dim = _check_vectors(vectors)
    footage = vectors[vectors["split"].isin(lib.footage_splits)]
    if footage.empty:
        raise ValueError(
            f"library.footage_splits {lib.footage_splits} select no clips; check the corpus splits"
        )
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    layout = LibraryLayout(tmp)
    stages: dict[str, float] = {}
    try:
        t = time.perf_counter()
        _write_parquets(layout, vectors, footage, progress)
        copy_repo_template(layout, dim)
        stages["write"] = time.perf_counter() - t
        if online:
            stages.update(apply_and_materialise(layout, progress))
        info = {
            "format": LIBRARY_FORMAT,
            "version": version,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "footage_splits": list(lib.footage_splits),
            "size": len(footage),
            "clips": len(vectors),
            "splits": {s: int(n) for s, n in vectors["split"].value_counts().sort_index().items()},
            "dim": dim,
            "library_config": lib.model_dump(),
            "stage_seconds": {k: round(v, 3) for k, v in stages.items()},
            "online": online,
            **(meta or {}),
        }
        write_json(layout.info, info)
        _swap_into_place(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - start
    logger.info(
        "built footage library %s (%d footage clips) in %.1f s", target, len(footage), seconds
    )
    return BuildReport(target, version, True, len(footage), len(vectors), seconds, stages)


def _is_current(layout: LibraryLayout, version: str) -> bool:
    from dubops.feature_store.layout import LibraryError

    try:
        info = layout.read_info()
        layout.check_files(feast=True, milvus_store=True)
    except LibraryError:
        return False
    return info.get("version") == version


def _check_vectors(vectors: pd.DataFrame) -> int:
    """Raise on a malformed vectors frame; return the vector size."""
    missing = [c for c in (*LABEL_COLUMNS, *MODALITIES) if c not in vectors.columns]
    if missing:
        raise ValueError(
            f"vectors frame lacks columns {missing}; it needs {[*LABEL_COLUMNS, *MODALITIES]}"
        )
    if vectors["clip_id"].duplicated().any():
        raise ValueError("vectors frame has duplicate clip_id values")
    dim = len(vectors["scene"].iloc[0])
    for m in MODALITIES:
        matrix = np.stack(vectors[m].to_numpy()).astype(np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != dim:
            raise ValueError(f"{m} vectors have shape {matrix.shape[1:]}, scene vectors ({dim},)")
        norms = np.linalg.norm(matrix, axis=1)
        if not np.allclose(norms, 1.0, atol=1e-3):
            raise ValueError(
                f"{m} vectors must be L2-normalised (norms {norms.min():.3f}..{norms.max():.3f})"
            )
    return dim


def _table(frame: pd.DataFrame, extra: dict[str, Any] | None = None):
    """A pyarrow table with vectors as list<float32> columns (fast for 100k rows)."""
    import pyarrow as pa

    columns: dict[str, Any] = {c: pa.array(frame[c].astype(str).tolist()) for c in LABEL_COLUMNS}
    for m in MODALITIES:
        matrix = np.ascontiguousarray(np.stack(frame[m].to_numpy()), dtype=np.float32)
        columns[vector_field(m)] = pa.FixedSizeListArray.from_arrays(
            pa.array(matrix.ravel()), matrix.shape[1]
        ).cast(pa.list_(pa.float32()))
    columns.update(extra or {})
    return pa.table(columns)


def _write_parquets(
    layout: LibraryLayout, vectors, footage, progress: StageProgress | None
) -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    if progress:
        progress("write", 0, 2)
    layout.footage.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(_table(vectors), layout.clips)
    if progress:
        progress("write", 1, 2)
    n = len(footage)
    stamp = pa.array([pd.Timestamp(EVENT_TIME)] * n, type=pa.timestamp("us", tz="UTC"))
    extra = {
        "footage_id": pa.array(footage["clip_id"].astype(str).tolist()),
        "event_timestamp": stamp,
    }
    pq.write_table(_table(footage, extra), layout.footage)
    if progress:
        progress("write", 2, 2)


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` over ``target``; the old library is removed only after the swap."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(LibraryLayout(target).online_store))
    replace_dir(tmp, target)
