"""Online drift in a server: a rolling window of served dubs scored against the reference.

The request path only enqueues the dub's record (microseconds); one background
thread appends it to the request log, keeps the last ``window`` records, and
every ``every`` records scores the window against the model's reference and
hands the report to ``on_update`` (the servers set the
``dubops_feature_drift*`` gauges from it). Scores are published only for a full
window: the reference's thresholds are calibrated for that size.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from dubops.monitoring.reference import ReferenceProfile
from dubops.monitoring.request_log import RequestLog

logger = logging.getLogger(__name__)
_STOP = object()


class DriftMonitor:
    """Rolling-window drift of served dubs (see the module docstring).

    Args:
        reference: the served version's reference (None: log only, no drift).
        on_update: called with ``(report, window size)`` after each scoring, and with
            ``(None, size)`` while the window fills.
        log: where every record also goes (None: not logged).
        every: score once per this many records.
        max_pending: records waiting for the thread; past it new ones are dropped (and
            counted in :attr:`dropped`) rather than slowing requests.
    """

    def __init__(
        self,
        reference: ReferenceProfile | None,
        on_update: Callable[[dict[str, dict[str, Any]] | None, int], None],
        log: RequestLog | None = None,
        every: int = 1,
        max_pending: int = 1000,
        server: str = "",
        model_version: str = "",
    ) -> None:
        self.reference = reference
        self.window_size = reference.window if reference is not None else 0
        self.on_update = on_update
        self.log = log
        self.every = max(1, every)
        self.server, self.model_version = server, model_version
        self.window: deque[tuple[dict[str, Any], dict[str, Any]]] = deque(
            maxlen=max(self.window_size, 1)
        )
        self.last_report: dict[str, dict[str, Any]] | None = None
        self.dropped = 0
        self.observed = 0
        self._pending: queue.Queue[Any] = queue.Queue(max_pending)
        self._thread = threading.Thread(target=self._run, name="dubops-drift", daemon=True)
        self._thread.start()

    def observe(self, features: dict[str, Any], vectors: dict[str, Any]) -> None:
        """Queue one dub's record (never blocks)."""
        try:
            self._pending.put_nowait((features, vectors))
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued record is processed (tests and shutdown)."""
        done = threading.Event()
        self._pending.put((None, done))
        done.wait(timeout)

    def close(self) -> None:
        self._pending.put(_STOP)
        self._thread.join(timeout=30)
        if self.log is not None:
            self.log.close()

    def _run(self) -> None:
        while True:
            item = self._pending.get()
            if item is _STOP:
                return
            features, vectors = item
            if features is None:  # a flush marker
                vectors.set()
                continue
            try:
                self._take(features, vectors)
            except Exception:  # monitoring must never take the server down
                logger.exception("drift monitoring failed on a record")

    def _take(self, features: dict[str, Any], vectors: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.append(features, vectors, self.server, self.model_version)
        if self.reference is None:
            return
        self.window.append((features, vectors))
        self.observed += 1
        if len(self.window) < self.window_size:
            self.on_update(None, len(self.window))
            return
        if self.observed % self.every and self.last_report is not None:
            return
        records = list(self.window)
        report = self.reference.compare([f for f, _ in records], [v for _, v in records])
        self.last_report = report
        self.on_update(report, len(records))
