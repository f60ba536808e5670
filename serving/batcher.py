"""Adaptive batching in front of :meth:`DubbingPipeline.dub_many`, with a bounded queue,
deadlines and cancellation.

Requests arriving within ``max_latency_s`` of each other (up to ``max_batch_size``)
are dubbed by one ``dub_many`` call: one reasoner batch and one sampler call for
all of them, which is where batching pays on CPU and GPU alike. Both servers use
this class, so KServe and BentoML batch the same way. We do not use BentoML's
``batchable`` APIs: they batch list-typed inputs only, and give no per-request
deadline, queue limit or cancellation.

A request past its deadline is answered with :class:`RequestTimeoutError` and its
work stops: a batch stops at the next sampler step once every request in it has
timed out (:mod:`dubops.cancellation`); a request still queued is dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from dubops.errors import DubOpsError, InputError

logger = logging.getLogger(__name__)


class QueueFullError(DubOpsError):
    """Too many requests are waiting; the client should retry after ``retry_after`` s."""

    def __init__(self, waiting: int, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(
            f"{waiting} requests are waiting for the model; retry after {retry_after:.0f} s "
            "or send long clips to POST /jobs"
        )


class RequestTimeoutError(DubOpsError):
    """The request ran past its deadline; its work was stopped."""


@dataclass
class _Ticket:
    request: Any
    deadline: float
    future: Future = field(default_factory=Future)
    abandoned: threading.Event = field(default_factory=threading.Event)

    def given_up(self) -> bool:
        return self.abandoned.is_set() or time.monotonic() > self.deadline


DubMany = Callable[[Sequence[Any]], list[Any]]


class AdaptiveBatcher:
    """One worker thread that groups waiting requests into ``dub_many`` calls.

    Args:
        dub_many: the pipeline's ``dub_many`` (or a wrapper adding metrics).
        max_batch_size: clips per call (1 turns batching off).
        max_latency_s: how long the first request of a batch waits for company.
        max_queue: requests allowed to wait; past it :meth:`submit` raises
            :class:`QueueFullError`.
        on_batch: called with each batch's size (a metrics hook).
    """

    def __init__(
        self,
        dub_many: DubMany,
        max_batch_size: int = 8,
        max_latency_s: float = 0.1,
        max_queue: int = 16,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.dub_many = dub_many
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_s
        self.max_queue = max_queue
        self.on_batch = on_batch or (lambda _n: None)
        self._queue: queue.Queue[_Ticket | None] = queue.Queue()
        self._busy = 0  # requests in the batch being dubbed
        self._seconds_per_batch = 10.0  # running estimate for Retry-After
        self._thread = threading.Thread(target=self._run, name="dubops-batcher", daemon=True)
        self._stopping = False
        self._thread.start()

    @property
    def depth(self) -> int:
        """Requests waiting or being dubbed."""
        return self._queue.qsize() + self._busy

    def submit(self, request: Any, timeout_s: float) -> _Ticket:
        """Queue one request; its ticket's ``future`` gets the result or the error."""
        if self._stopping:
            raise QueueFullError(self.depth, 30.0)
        if self._queue.qsize() >= self.max_queue:
            batches = self._queue.qsize() / self.max_batch_size + 1
            raise QueueFullError(self.depth, max(1.0, batches * self._seconds_per_batch))
        ticket = _Ticket(request, time.monotonic() + timeout_s)
        self._queue.put(ticket)
        return ticket

    def dub(self, request: Any, timeout_s: float) -> Any:
        """Dub one request, blocking up to ``timeout_s`` (then the work stops)."""
        ticket = self.submit(request, timeout_s)
        try:
            return ticket.future.result(timeout=timeout_s)
        except TimeoutError:
            ticket.abandoned.set()
            raise _timed_out(timeout_s) from None

    async def dub_async(self, request: Any, timeout_s: float) -> Any:
        """:meth:`dub` for an event loop (the loop keeps serving while the model works)."""
        import asyncio

        ticket = self.submit(request, timeout_s)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(ticket.future), timeout_s)
        except asyncio.CancelledError:  # the client hung up: nobody wants the dub
            ticket.abandoned.set()
            raise
        except TimeoutError:
            ticket.abandoned.set()
            raise _timed_out(timeout_s) from None

    def close(self, drain: bool = True, timeout: float | None = None) -> None:
        """Refuse new requests; finish (``drain``) or abandon the queued ones."""
        self._stopping = True
        if not drain:
            while not self._queue.empty():
                ticket = self._queue.get_nowait()
                if ticket is not None:
                    ticket.abandoned.set()
        self._queue.put(None)
        self._thread.join(timeout)

    # -- the worker ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            window_ends = time.monotonic() + self.max_latency_s
            while len(batch) < self.max_batch_size:
                try:
                    ticket = self._queue.get(timeout=max(0.0, window_ends - time.monotonic()))
                except queue.Empty:
                    break
                if ticket is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(ticket)
            # Running futures cannot be cancelled: a timed-out dub_async (asyncio cancels
            # the future it wraps) must not leave a cancelled future for this thread to
            # set, which raises InvalidStateError and would end the worker for good.
            live = [
                t for t in batch if not t.given_up() and t.future.set_running_or_notify_cancel()
            ]
            for ticket in batch:
                if ticket not in live and not ticket.future.done():
                    ticket.future.set_exception(RequestTimeoutError("timed out while queued"))
            if live:
                self._dub(live)

    def _dub(self, batch: list[_Ticket]) -> None:
        from dubops.cancellation import Cancelled, stop_when

        self._busy = len(batch)
        self.on_batch(len(batch))
        tick = time.monotonic()
        try:
            with stop_when(lambda: all(t.given_up() for t in batch)):
                results = self.dub_many([t.request for t in batch])
            for ticket, result in zip(batch, results, strict=True):
                ticket.future.set_result(result)
        except Cancelled as exc:
            for ticket in batch:
                ticket.future.set_exception(RequestTimeoutError(str(exc)))
        except InputError as exc:
            if len(batch) == 1:
                self._fail(batch, exc)
            else:  # one bad request must not fail its batch-mates: dub them one by one
                for ticket in batch:
                    self._dub([ticket])
        except Exception as exc:  # the server turns it into a 500 for these requests
            logger.exception("dubbing a batch of %d failed", len(batch))
            self._fail(batch, exc)
        finally:
            self._busy = 0
            spent = time.monotonic() - tick
            self._seconds_per_batch = 0.7 * self._seconds_per_batch + 0.3 * spent

    @staticmethod
    def _fail(batch: list[_Ticket], exc: BaseException) -> None:
        for ticket in batch:
            if not ticket.future.done():
                ticket.future.set_exception(exc)


def _timed_out(timeout_s: float) -> RequestTimeoutError:
    return RequestTimeoutError(
        f"the dub took longer than {timeout_s:g} s and was stopped; send long clips "
        "to POST /jobs or raise serving.request_timeout_s"
    )
