"""Result files: ids that cannot name another file, and a TTL that keeps the disk bounded."""

from __future__ import annotations

import os
import time

import pytest

from dubops.errors import InputError
from dubops.serving.artifacts import ArtifactStore


def test_ids_are_checked_before_any_path_is_built(tmp_path):
    store = ArtifactStore(tmp_path / "artifacts")
    artifact = store.put(b"RIFF....WAVE", "wav")
    assert store.path(artifact).read_bytes() == b"RIFF....WAVE"
    for bad in ("..", "../../etc/passwd", "x.wav", f"{artifact}/..", artifact.upper()):
        with pytest.raises(InputError, match="artifact_id"):
            store.path(bad)
    with pytest.raises(FileNotFoundError):
        store.path("0" * 32 + ".mp4")
    with pytest.raises(ValueError, match="kind"):
        store.put(b"", "exe")


def test_files_past_their_ttl_are_pruned_and_fresh_ones_kept(tmp_path):
    store = ArtifactStore(tmp_path, ttl_s=3600)
    old, fresh = store.put(b"old", "wav"), store.put(b"new", "mp4")
    past = time.time() - 7200
    os.utime(tmp_path / old, (past, past))
    assert store.prune() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [fresh]
