"""Stopping work a caller no longer wants: a timed-out request, a cancelled job.

A server runs :meth:`dubops.inference.DubbingPipeline.dub_many` inside
:func:`stop_when`; the pipeline checks between its steps and the flow sampler
checks at every ODE step, so abandoned work stops within one sampler step
instead of running to the end. A context variable (not an argument threaded
through every model call) keeps the model code free of serving concerns and is
private to the thread that set it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from dubops.errors import DubOpsError

_should_stop: ContextVar[Callable[[], bool] | None] = ContextVar("dubops_should_stop", default=None)


class Cancelled(DubOpsError):  # noqa: N818 (reads as the state it reports)
    """The caller stopped waiting (a timeout, a cancelled job); the work was abandoned."""


@contextmanager
def stop_when(should_stop: Callable[[], bool] | None) -> Iterator[None]:
    """Run the block so that :func:`raise_if_stopped` raises once ``should_stop()`` is true."""
    token = _should_stop.set(should_stop)
    try:
        yield
    finally:
        _should_stop.reset(token)


def raise_if_stopped() -> None:
    """Raise :class:`Cancelled` when the enclosing :func:`stop_when` says stop (cheap)."""
    check = _should_stop.get()
    if check is not None and check():
        raise Cancelled("the work was stopped: its caller timed out or cancelled it")
