"""The request log: every served dub's monitored features (never its media), on local disk.

One SQLite file per segment in a folder: ``requests.sqlite`` takes new rows
(WAL, so a reader never blocks the server); when it holds ``max_rows`` it is
renamed ``requests-<UTC time>.sqlite`` and a fresh one started, and only the
newest ``keep_files`` segments are kept. :func:`read_log` reads a folder (every
segment, oldest first) or one file; ``dubops monitor drift`` is its reader.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from dubops.errors import InputError
from dubops.monitoring.features import json_ready

CURRENT = "requests.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    server TEXT NOT NULL,
    model_version TEXT NOT NULL,
    features TEXT NOT NULL,
    vectors TEXT NOT NULL
)
"""


class RequestLog:
    """Append-only, rotated log of monitored features (thread-safe)."""

    def __init__(self, folder: str | Path, max_rows: int = 50_000, keep_files: int = 10) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_rows = max_rows
        self.keep_files = keep_files
        self._lock = threading.Lock()
        self._db = self._open()
        self._rows = self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.folder / CURRENT, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(_SCHEMA)
        db.commit()
        return db

    def append(
        self,
        features: dict[str, Any],
        vectors: dict[str, Any],
        server: str = "",
        model_version: str = "",
    ) -> None:
        """Log one dub's record (rotating first when the current segment is full)."""
        row = (
            time.time(),
            server,
            model_version,
            json.dumps(json_ready(features)),
            json.dumps(vectors),
        )
        with self._lock:
            if self._rows >= self.max_rows:
                self._rotate()
            self._db.execute(
                "INSERT INTO requests (ts, server, model_version, features, vectors) "
                "VALUES (?, ?, ?, ?, ?)",
                row,
            )
            self._db.commit()
            self._rows += 1

    def _rotate(self) -> None:
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = self.folder / f"requests-{stamp}-{time.time_ns() % 10**9:09d}.sqlite"
        os.replace(self.folder / CURRENT, target)
        for extra in ("-wal", "-shm"):
            (self.folder / f"{CURRENT}{extra}").unlink(missing_ok=True)
        for old in segments(self.folder)[: -self.keep_files]:
            if old.name != CURRENT:
                old.unlink(missing_ok=True)
        self._db = self._open()
        self._rows = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()


def segments(folder: Path) -> list[Path]:
    """A log folder's files, oldest first (the current segment last)."""
    rotated = sorted(folder.glob("requests-*.sqlite"))
    current = folder / CURRENT
    return rotated + ([current] if current.is_file() else [])


def read_log(
    path: str | Path,
    since: float | None = None,
    model_version: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Rows ``{ts, server, model_version, features, vectors}`` of a log folder or file,
    oldest first; with ``limit``, only the newest ``limit`` matching rows (a full log of
    ten segments holds half a million records: a report reads what it needs).

    Raises:
        InputError: ``path`` is neither a log folder nor a log file.
    """
    path = Path(path)
    files = segments(path) if path.is_dir() else [path] if path.is_file() else []
    if not files:
        raise InputError(
            f"--log {path}: no request log there; a server writes one under its "
            "serving.state_dir (requests/) or monitoring.log_dir"
        )
    where, params = ["1 = 1"], []
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if model_version:
        where.append("model_version = ?")
        params.append(model_version)
    query = (
        "SELECT ts, server, model_version, features, vectors FROM requests WHERE "
        + " AND ".join(where)
        + " ORDER BY id DESC"
    )
    newest_first: list[tuple] = []
    for file in reversed(files):  # newest segment first, so a limit stops early
        left = None if limit is None else limit - len(newest_first)
        if left is not None and left <= 0:
            break
        try:
            db = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
            found = db.execute(
                query + ("" if left is None else f" LIMIT {int(left)}"), params
            ).fetchall()
            db.close()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"--log {file}: not a DubOps request log ({exc})") from None
        newest_first.extend(found)
    return [
        {
            "ts": ts,
            "server": server,
            "model_version": version,
            "features": json.loads(features),
            "vectors": json.loads(vectors),
        }
        for ts, server, version, features, vectors in reversed(newest_first)
    ]
