"""The one place that knows a footage library folder's layout, and when it is unusable.

<library>/library.json                    version, counts, extractor versions, manifest hash
<library>/clips.parquet                   vectors + labels of every corpus clip (all splits)
<library>/feature_repo/                   the Feast repository (copied from feature_store/repo)
<library>/feature_repo/data/footage.parquet   the footage splits: the Feast offline source
<library>/feature_repo/data/registry.db       Feast registry
<library>/feature_repo/data/online_store.db   Milvus Lite data folder (the online store)

Paths inside the Feast repo are relative to it, so the build can write a temp
folder and rename it into place.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dubops.errors import DubOpsError

LIBRARY_FORMAT = 1
MODALITIES: tuple[str, ...] = ("scene", "face", "text", "audio")
QUERY_MODALITIES: tuple[str, ...] = ("scene", "face", "text")
LABEL_COLUMNS: tuple[str, ...] = ("clip_id", "split", "speaker", "emotion", "audio_path")
FEAST_PROJECT = "dubops_footage"
BUILD_HINT = "run `dubops library build --data DIR --extractors DIR --out {path}`"


class LibraryError(DubOpsError, ValueError):
    """The library is missing, incomplete or stale; the message names the fix."""


def quiet_milvus_lite() -> None:
    """Silence the in-process Milvus Lite server's gRPC error log.

    pymilvus 3 first asks the server for ``AllocTimestamp``, which Milvus Lite does
    not implement; the client falls back, but the server logs a full traceback at
    ERROR for every call, which reads like a failed build when nothing failed.
    """
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)


def view_name(modality: str) -> str:
    """The Feast feature view (and, prefixed by the project, Milvus collection) of a modality."""
    return f"footage_{modality}"


def vector_field(modality: str) -> str:
    return f"{modality}_vector"


def collection_name(modality: str) -> str:
    return f"{FEAST_PROJECT}_{view_name(modality)}"


@dataclass(frozen=True)
class LibraryLayout:
    """Paths inside one library folder."""

    root: Path

    @property
    def info(self) -> Path:
        return self.root / "library.json"

    @property
    def clips(self) -> Path:
        return self.root / "clips.parquet"

    @property
    def repo(self) -> Path:
        return self.root / "feature_repo"

    @property
    def footage(self) -> Path:
        return self.repo / "data" / "footage.parquet"

    @property
    def registry(self) -> Path:
        return self.repo / "data" / "registry.db"

    @property
    def online_store(self) -> Path:
        return self.repo / "data" / "online_store.db"

    # Relative forms written into feature_store.yaml.
    REGISTRY_REL = "data/registry.db"
    ONLINE_REL = "data/online_store.db"

    def read_info(self) -> dict[str, Any]:
        """library.json, or a :class:`LibraryError` naming `dubops library build`."""
        hint = BUILD_HINT.format(path=self.root)
        if not self.root.is_dir():
            raise LibraryError(f"no footage library at {self.root}; {hint}")
        if not self.info.is_file():
            raise LibraryError(f"{self.info} is missing (incomplete library); {hint}")
        info = json.loads(self.info.read_text())
        if info.get("format") != LIBRARY_FORMAT:
            raise LibraryError(
                f"{self.info} has format {info.get('format')}, this DubOps reads "
                f"{LIBRARY_FORMAT}; {hint}"
            )
        return info

    def is_library(self) -> bool:
        """Whether a build made this folder: its ``library.json`` names a format and version.

        The build writes ``library.json`` last and renames the whole folder into
        place, so every folder it made has one (an older format's too).
        """
        from dubops.fileio import marked_with

        return marked_with(self.root, self.info.name, "format", "version")

    def check_replaceable(self, option: str = "--out") -> None:
        """Refuse to replace a folder that is not a library (it may hold a user's files).

        A missing or empty folder, or one a build made (:meth:`is_library`), may be
        replaced; anything else raises :class:`~dubops.errors.InputError` and is
        left as it is.
        """
        from dubops.fileio import check_replaceable

        check_replaceable(self.root, option, "footage library", self.info.name, self.is_library())

    def check_files(self, feast: bool = False, milvus_store: bool = False) -> None:
        """Raise a :class:`LibraryError` when a file the chosen backend needs is gone.

        Args:
            feast: the Feast repo (yaml, registry) is needed.
            milvus_store: the local Milvus Lite data folder is needed (not with a server URI).
        """
        hint = BUILD_HINT.format(path=self.root)
        needed = [self.clips, self.footage]
        if feast:
            needed += [self.repo / "feature_store.yaml", self.registry]
        if milvus_store:
            needed.append(self.online_store)
        for path in needed:
            if not path.exists():
                raise LibraryError(f"{path} is missing (incomplete library); {hint}")
