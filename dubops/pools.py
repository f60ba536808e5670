"""Worker pools that end with the worker's error instead of hanging.

``multiprocessing.Pool`` waits forever for the result of a task whose worker
died (killed for memory, a crash in native code): the command hangs with no
message. :class:`concurrent.futures.ProcessPoolExecutor` notices the death
(``BrokenProcessPool``); on any failure the queued tasks are cancelled so the
error comes back after at most the tasks already running.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from dubops.errors import DubOpsError


class WorkerDiedError(DubOpsError, RuntimeError):
    """A worker process ended without a result (killed, out of memory, crashed)."""


def map_unordered(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    max_tasks_per_child: int | None = None,
    preload: Sequence[str] = (),
) -> Iterator[Any]:
    """``fn(item)`` for every item in ``workers`` fresh forkserver processes, as they finish.

    Raises:
        the first exception a task raised (the rest are cancelled);
        WorkerDiedError: a worker process died without a result.
    """
    context = multiprocessing.get_context("forkserver")
    if preload:
        context.set_forkserver_preload(list(preload))
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=initializer,
        initargs=initargs,
        max_tasks_per_child=max_tasks_per_child,
    )
    try:
        pending = {pool.submit(fn, item) for item in items}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    yield future.result()
                except BrokenProcessPool:
                    raise WorkerDiedError(
                        f"a worker process died without a result ({workers} workers; out of "
                        "memory or a crash in native code); rerun with fewer workers"
                    ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
