"""The files a dub produces (wav, mp4), kept by id so a JSON answer can point at them.

BentoML cannot answer multipart, so ``POST /dub`` returns JSON with artifact ids and
``GET /artifacts/{id}`` serves the bytes. Ids are random and checked against one
pattern before any path is built from them, so no request can name another file.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from dubops.errors import InputError

if TYPE_CHECKING:
    from dubops.inference.result import DubResult

MEDIA_TYPES = {"wav": "audio/wav", "mp4": "video/mp4"}
_ID = re.compile(r"^[0-9a-f]{32}\.(wav|mp4)$")


class ArtifactStore:
    """A folder of result files named ``<uuid>.<wav|mp4>``, each kept ``ttl_s`` seconds
    (a client fetches its files soon after the answer; a server must not fill its disk).
    """

    PRUNE_EVERY = 100  # puts between two sweeps of the folder

    def __init__(self, root: str | Path, ttl_s: float = 24 * 3600.0) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_s
        self._puts = 0

    def prune(self, now: float | None = None) -> int:
        """Delete files (and stray temp parts) older than the TTL; how many went."""
        import time

        cutoff = (now if now is not None else time.time()) - self.ttl_s
        removed = 0
        for path in self.root.iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # another sweep took it
                continue
        return removed

    def put(self, data: bytes, kind: str) -> str:
        """Store ``data`` (written to a temp file, then renamed) and return its id."""
        if kind not in MEDIA_TYPES:
            raise ValueError(f"unknown artifact kind {kind!r}")
        artifact_id = f"{uuid.uuid4().hex}.{kind}"
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".part")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, self.root / artifact_id)
        self._puts += 1
        if self._puts % self.PRUNE_EVERY == 0:
            self.prune()
        return artifact_id

    def put_result(self, result: DubResult) -> dict[str, str]:
        """A result's wav (and mp4, when it has one): ``{"wav": id, "mp4": id}``."""
        from dubops.audio import wav_bytes

        ids = {"wav": self.put(wav_bytes(result.wave, result.sample_rate), "wav")}
        if result.mp4:
            ids["mp4"] = self.put(result.mp4, "mp4")
        return ids

    def path(self, artifact_id: str) -> Path:
        """The file of ``artifact_id`` (:class:`InputError` for a malformed id,
        :class:`FileNotFoundError` for an unknown one)."""
        if not _ID.match(artifact_id):
            raise InputError(
                f"artifact_id: {artifact_id!r} is not an artifact id (<32 hex>.wav|mp4); use "
                "an id a /dub or /jobs answer gave"
            )
        path = self.root / artifact_id
        if not path.is_file():
            raise FileNotFoundError(artifact_id)
        return path
