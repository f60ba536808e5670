"""Dubbed lines kept by their inputs, so re-dubbing one line redoes only that line.

A line's key is the SHA-256 of everything that decides its speech: the model,
the frames of its slot, the text and the preceding line, the voice prompt's
bytes, the overrides, the seed and the slot length. Change any of them and the
key changes; leave them and the line is read back bit for bit (the wave is kept
as float32 ``.npy``, not re-quantised).

Each entry is ``<key>.npy`` and ``<key>.json`` (the dub's result without the
wave); the JSON is written last, so an entry without it (an interrupted write)
is not an entry.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from dubops.fileio import atomic_path, write_json


def input_key(parts: dict[str, Any]) -> str:
    """The key of a line's inputs (JSON-able values; arrays and bytes are hashed first)."""
    plain = {k: _plain(v) for k, v in parts.items()}
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()


class SegmentCache:
    """A folder of dubbed lines by key."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def get(self, key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        """``(wave, result JSON)`` of a kept line, or None."""
        wave_path, info_path = self._paths(key)
        if not (wave_path.is_file() and info_path.is_file()):
            return None
        try:
            return np.load(wave_path, allow_pickle=False), json.loads(info_path.read_text())
        except (OSError, ValueError):  # a damaged entry is dubbed again
            return None

    def put(self, key: str, wave: np.ndarray, info: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        wave_path, info_path = self._paths(key)
        with atomic_path(wave_path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.asarray(wave, dtype=np.float32), allow_pickle=False)
        write_json(info_path, info)

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.folder / f"{key}.npy", self.folder / f"{key}.json"


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        return {"array": digest, "shape": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, bytes):
        return {"bytes": hashlib.sha256(value).hexdigest()}
    if isinstance(value, Path):
        return {"file": hashlib.sha256(value.read_bytes()).hexdigest()}
    return value
