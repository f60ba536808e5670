"""A durable job queue for long dubbing work behind the HTTP server.

BentoML's task queue is for development only: it forgets its tasks on restart and a
cancel does not stop the work. Dubbing a film takes minutes, so jobs live in a SQLite
file (WAL: readers never block the writer) and survive a ``kill -9``: at start-up every
job still marked ``running`` is put back in the queue, or failed once it has been
interrupted ``max_attempts`` times, so no job is ever lost or left running forever.

:meth:`JobStore.recover` assumes one server process owns the file when it starts (it
requeues every ``running`` job); several runners may share a file once all have started.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dubops.errors import DubOpsError

logger = logging.getLogger(__name__)

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
_OPEN = ("queued", "running")  # states a job can still leave
_PUBLIC = [
    "id",
    "state",
    "stage",
    "progress",
    "attempts",
    "error",
    "created",
    "started",
    "finished",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, idempotency_key TEXT UNIQUE, state TEXT NOT NULL, stage TEXT,
    progress REAL NOT NULL DEFAULT 0, request TEXT NOT NULL, result TEXT, error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, started REAL, finished REAL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state_created ON jobs (state, created);
"""

Report = Callable[[str, float], None]
ShouldStop = Callable[[], bool]
Work = Callable[["Job", Report, ShouldStop], dict]


@dataclass(frozen=True)
class Job:
    """One row of the ``jobs`` table, with ``request`` and ``result`` parsed from JSON."""

    id: str
    idempotency_key: str | None
    state: str
    stage: str | None
    progress: float
    request: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    created: float
    started: float | None
    finished: float | None
    updated: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        values = dict(row)
        values["request"] = json.loads(values["request"])
        values["result"] = None if values["result"] is None else json.loads(values["result"])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The public view: what a client may poll (the request body may hold private paths)."""
        return {key: getattr(self, key) for key in _PUBLIC}


class JobStore:
    """The jobs table in one SQLite file; every method is one short transaction.

    One connection per store, guarded by a lock, serves all threads; several stores
    (processes) on one file coordinate through SQLite's own locks (``timeout=30``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: autocommit; every change is one UPDATE/INSERT ... RETURNING,
        # which takes SQLite's write lock before it reads, so it is atomic across processes.
        self._conn = sqlite3.connect(
            str(self.path), timeout=30, check_same_thread=False, isolation_level=None
        )
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def create(self, request: dict, idempotency_key: str | None = None) -> tuple[Job, bool]:
        """Queue a job; a known idempotency key returns its job and ``False`` instead.

        The UNIQUE constraint decides races: the loser's INSERT fails and it reads the
        winner's row, so a retried POST never dubs a film twice.
        """
        now = time.time()
        try:
            rows = self._rows(
                "INSERT INTO jobs (id, idempotency_key, state, progress, request, attempts,"
                " created, updated) VALUES (?, ?, 'queued', 0, ?, 0, ?, ?) RETURNING *",
                (uuid.uuid4().hex, idempotency_key, json.dumps(request), now, now),
            )
        except sqlite3.IntegrityError:
            if idempotency_key is None:
                raise
            rows = self._rows("SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,))
            if not rows:
                raise
            return Job.from_row(rows[0]), False
        return Job.from_row(rows[0]), True

    def get(self, job_id: str) -> Job | None:
        rows = self._rows("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return Job.from_row(rows[0]) if rows else None

    def list(self, states: Sequence[str] | None = None, limit: int = 100) -> list[Job]:
        """The newest jobs first, optionally only those in ``states``."""
        where, params = "", []
        if states is not None:
            where = f"WHERE state IN ({','.join('?' * len(states))})"
            params = [*states]
        rows = self._rows(
            f"SELECT * FROM jobs {where} ORDER BY created DESC, rowid DESC LIMIT ?",
            [*params, limit],
        )
        return [Job.from_row(row) for row in rows]

    def claim_next(self) -> Job | None:
        """Move the oldest queued job to ``running``; one statement, so one claimant wins."""
        now = time.time()
        rows = self._rows(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, started = ?,"
            " updated = ?, stage = NULL, progress = 0"
            " WHERE id = (SELECT id FROM jobs WHERE state = 'queued'"
            " ORDER BY created, rowid LIMIT 1) AND state = 'queued' RETURNING *",
            (now, now),
        )
        return Job.from_row(rows[0]) if rows else None

    def update_progress(self, job_id: str, stage: str, progress: float) -> bool:
        """Record the current step; ``False`` once the job is no longer running (cancelled)."""
        rows = self._rows(
            "UPDATE jobs SET stage = ?, progress = ?, updated = ?"
            " WHERE id = ? AND state = 'running' RETURNING id",
            (stage, min(max(float(progress), 0.0), 1.0), time.time(), job_id),
        )
        return bool(rows)

    def _close(
        self, job_id: str, state: str, open_states: str = "'queued', 'running'", **values: Any
    ) -> bool:
        """Move an open job to a final state; a finished or cancelled job is never rewritten."""
        now, sets = time.time(), "".join(f", {name} = ?" for name in values)
        rows = self._rows(
            f"UPDATE jobs SET state = ?, finished = ?, updated = ?{sets}"
            f" WHERE id = ? AND state IN ({open_states}) RETURNING id",
            (state, now, now, *values.values(), job_id),
        )
        return bool(rows)

    def finish(self, job_id: str, result: dict) -> bool:
        return self._close(job_id, "succeeded", result=json.dumps(result), progress=1.0)

    def fail(self, job_id: str, error: str) -> bool:
        return self._close(job_id, "failed", error=error)

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued or running job; a finished one is returned as it is."""
        self._close(job_id, "cancelled")
        return self.get(job_id)

    def cancel_if_queued(self, job_id: str) -> bool:
        """Cancel a job no worker has claimed; ``True`` if it was queued (it will never run)."""
        return self._close(job_id, "cancelled", open_states="'queued'")

    def recover(self, max_attempts: int) -> dict[str, int]:
        """Requeue the jobs a dead process left ``running``, or fail those tried too often.

        One statement, so a crash half-way through recovery cannot strand a job either.
        """
        now, retry = time.time(), "attempts < :max"
        rows = self._rows(
            f"UPDATE jobs SET updated = :now, stage = NULL, progress = 0,"
            f" state = CASE WHEN {retry} THEN 'queued' ELSE 'failed' END,"
            f" started = CASE WHEN {retry} THEN NULL ELSE started END,"
            f" finished = CASE WHEN {retry} THEN NULL ELSE :now END,"
            f" error = CASE WHEN {retry} THEN NULL"
            f" ELSE 'interrupted ' || attempts || ' times (server restarts); not retried' END"
            f" WHERE state = 'running' RETURNING state",
            {"now": now, "max": max_attempts},
        )
        states = [row["state"] for row in rows]
        return {"requeued": states.count("queued"), "failed": states.count("failed")}

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for row in self._rows("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"):
            counts[row["state"]] = row["n"]
        return counts

    def queued_count(self) -> int:
        return self._rows("SELECT COUNT(*) AS n FROM jobs WHERE state = 'queued'")[0]["n"]


@dataclass
class _Slot:
    """A job running in this process and why it was asked to stop (if it was)."""

    flag: threading.Event = field(default_factory=threading.Event)
    reason: str | None = None  # "cancel" (final) or "shutdown" (left running, recovered)

    def stop(self, reason: str) -> None:
        if not self.flag.is_set():
            self.reason = reason
            self.flag.set()


class JobRunner:
    """Worker threads that take jobs from a :class:`JobStore`, apart from any request path."""

    def __init__(
        self,
        store: JobStore,
        work: Work,
        workers: int = 1,
        max_attempts: int = 2,
        poll_s: float = 0.2,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        self.store, self._work, self.workers = store, work, workers
        self.max_attempts, self.poll_s, self._on_outcome = max_attempts, poll_s, on_outcome
        self._lock = threading.Lock()
        self._running: dict[str, _Slot] = {}
        self._threads: list[threading.Thread] = []
        self._wake, self._stopping = threading.Event(), threading.Event()
        self._halting = False  # stop(drain=False): a job claimed now is stopped at once

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("JobRunner already started")
        counts = self.store.recover(self.max_attempts)
        logger.info("job queue recovered: %(requeued)d requeued, %(failed)d failed", counts)
        self._stopping.clear()
        self._halting = False
        for i in range(self.workers):
            thread = threading.Thread(target=self._loop, name=f"dubops-job-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def notify(self) -> None:
        """Wake idle workers now rather than at their next poll (call after ``create``)."""
        self._wake.set()

    def running_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._running)

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a job; if this process runs it, ask its work to stop.

        A running job's outcome is reported by its worker when the work ends; a queued one
        never reaches a worker, so it is reported here (each cancel is counted once).
        """
        if self.store.cancel_if_queued(job_id):
            self._emit("cancelled")
        job = self.store.cancel(job_id)
        with self._lock:
            if job_id in self._running:
                self._running[job_id].stop("cancel")
        return job

    def stop(self, drain: bool = True, timeout: float | None = None) -> None:
        """Stop claiming; let running jobs end (``drain``) or ask them to stop.

        A job that does not end stays ``running`` in the file; the next :meth:`start`
        recovers it.
        """
        with self._lock:
            self._stopping.set()
            if not drain:
                self._halting = True
                for slot in self._running.values():
                    slot.stop("shutdown")
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self._threads = [thread for thread in self._threads if thread.is_alive()]

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                job = self.store.claim_next()
            except sqlite3.Error:
                logger.exception("could not claim a job; retrying")
                job = None
            if job is None:
                self._wake.wait(self.poll_s)
                continue
            try:
                self._run(job)
            except Exception:  # bookkeeping failed (the file?): the worker must live on
                logger.exception("job %s: could not record its outcome", job.id)

    def _run(self, job: Job) -> None:
        slot = _Slot()
        with self._lock:
            self._running[job.id] = slot
            if self._halting:
                slot.stop("shutdown")

        def report(stage: str, progress: float) -> None:
            if not self.store.update_progress(job.id, stage, progress):
                slot.stop("cancel")  # cancelled elsewhere (another process or replica)

        try:
            outcome = self._attempt(job, slot, report)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
        if outcome is not None:
            logger.info("job %s %s", job.id, outcome)
            self._emit(outcome)

    def _attempt(self, job: Job, slot: _Slot, report: Report) -> str | None:
        """Run the work once; the final state it leaves, or ``None`` if left running."""
        from dubops.cancellation import Cancelled

        try:
            result = self._work(job, report, slot.flag.is_set)
            if not isinstance(result, dict):
                raise TypeError(f"job work returned {type(result).__name__}, not a dict")
            done = self.store.finish(job.id, result)
        except Exception as exc:
            if slot.reason == "shutdown":  # left running for recovery, unless cancelled too
                logger.info("job %s stopped by shutdown", job.id)
                return self._state(job.id)
            if slot.reason == "cancel" or isinstance(exc, Cancelled):
                self.store.cancel(job.id)
                return self._state(job.id)
            if isinstance(exc, DubOpsError):
                done = self.store.fail(job.id, str(exc))
            else:
                logger.exception("job %s failed", job.id)
                done = self.store.fail(job.id, f"{type(exc).__name__}: {exc}")
            return "failed" if done else self._state(job.id)
        return "succeeded" if done else self._state(job.id)

    def _state(self, job_id: str) -> str | None:
        job = self.store.get(job_id)
        return None if job is None or job.state in _OPEN else job.state

    def _emit(self, outcome: str) -> None:
        if self._on_outcome is None:
            return
        try:
            self._on_outcome(outcome)
        except Exception:
            logger.exception("on_outcome hook failed for %s", outcome)
