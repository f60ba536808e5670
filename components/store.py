"""The pipeline's persistent artifact store and its step cache.

``kfp.local`` deletes its workspace after every run, and a cluster's pods are gone
when a step ends, so every step keeps what it makes in a store that outlives the run
(a local folder, or the PVC on a cluster)::

    <store>/<step>/<key>/             what the step made (one folder per output)
    <store>/<step>/<key>/COMPLETE.json  the completion marker, written last, atomically
    <store>/runs/<run id>/<step>.json   what each step did in one pipeline run

The key of a step is a hash of everything its outputs depend on: its inputs' keys,
the config slice it reads, the data version and the package version. A step whose
marker exists returns the stored outputs at once (a re-run with nothing changed); a
step without one runs (again), so a pipeline stopped half-way resumes from the last
finished step.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dubops.errors import DubOpsError
from dubops.fileio import write_json

MARKER = "COMPLETE.json"
LOCK = "run.lock"
RUNS = "runs"
FINAL = "_final.json"  # beside the step events of a run; "_" keeps it out of them


class StoreBusyError(DubOpsError, ValueError):
    """Another pipeline run holds the store (a user error: the CLI reports it, exit 2)."""


def cache_key(step: str, parts: dict[str, Any]) -> str:
    """A short stable hash of a step name and the JSON-able things its outputs depend on."""
    blob = json.dumps({"step": step, **parts}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class StepRecord:
    """The completion marker of one step: enough to hand its outputs on without re-running.

    Attributes:
        step: the step name.
        key: its cache key.
        exports: output name -> path relative to the step folder.
        metrics: the flat metrics it reported.
        values: its plain outputs (e.g. a registered version number).
        seconds: how long the work took when it ran.
        finished_at: Unix time of completion.
        parts: what went into the key (for humans debugging a cache miss).
    """

    step: str
    key: str
    exports: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    finished_at: float = 0.0
    parts: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunEvent:
    """What one step did in one pipeline run (``<store>/runs/<run>/<step>.json``)."""

    step: str
    key: str
    status: str  # "ran", "cached" or "failed"
    seconds: float
    started_at: float
    error: str | None = None


class ArtifactStore:
    """The store's folder layout, its markers and its run records."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def step_dir(self, step: str, key: str) -> Path:
        return self.root / step / key

    def marker(self, step: str, key: str) -> Path:
        return self.step_dir(step, key) / MARKER

    def lookup(self, step: str, key: str) -> StepRecord | None:
        """The step's record when it finished before with this key, else None."""
        path = self.marker(step, key)
        if not path.is_file():
            return None
        try:
            return StepRecord(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError):
            return None  # a marker from another version of this code: run again

    def complete(self, record: StepRecord) -> None:
        """Write the marker last and atomically: the step's outputs are final from here on."""
        record.finished_at = time.time()
        write_json(self.marker(record.step, record.key), asdict(record))

    def invalidate(self, step: str, key: str) -> None:
        """Drop a marker whose outputs no longer hold (e.g. a registry that was reset)."""
        self.marker(step, key).unlink(missing_ok=True)

    def run_dir(self, run_id: str) -> Path:
        return self.root / RUNS / run_id

    def record_event(self, run_id: str, event: RunEvent) -> None:
        write_json(self.run_dir(run_id) / f"{event.step}.json", asdict(event))

    def record_final(self, run_id: str, state: str, error: str | None) -> None:
        """How the whole run ended (written by the exit handler)."""
        write_json(self.run_dir(run_id) / FINAL, {"state": state, "error": error})

    def run_final(self, run_id: str) -> dict[str, Any] | None:
        path = self.run_dir(run_id) / FINAL
        return json.loads(path.read_text()) if path.is_file() else None

    def run_events(self, run_id: str) -> list[RunEvent]:
        """The events of one pipeline run, in the order the steps started."""
        folder = self.run_dir(run_id)
        paths = [p for p in folder.glob("*.json") if not p.name.startswith("_")]
        events = [RunEvent(**json.loads(p.read_text())) for p in paths]
        return sorted(events, key=lambda e: e.started_at)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the store for one pipeline run: two runs with the same keys would train
        into the same folders. ``flock``: the kernel drops it when the holder dies."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                raise StoreBusyError(
                    f"--out {self.root}: another pipeline run (pid {holder}) is using this "
                    "store; wait for it or pass another --out"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(fd)  # closing releases the lock
