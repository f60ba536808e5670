"""The adaptive batcher: batches form, limits hold, abandoned work stops.

``dub_many`` here is a plain function standing in for the pipeline (the batcher takes
any callable); the cancellation it honours is the real :mod:`dubops.cancellation`.
"""

from __future__ import annotations

import threading
import time

import pytest

from dubops.cancellation import raise_if_stopped
from dubops.errors import InputError
from dubops.serving.batcher import AdaptiveBatcher, QueueFullError, RequestTimeoutError


def _echo(batches: list[list[str]]):
    def dub_many(requests):
        batches.append(list(requests))
        return [f"dubbed {r}" for r in requests]

    return dub_many


def _submit_together(batcher: AdaptiveBatcher, names: list[str]) -> list[str]:
    tickets = [batcher.submit(n, timeout_s=10) for n in names]
    return [t.future.result(timeout=10) for t in tickets]


def test_requests_within_the_window_share_one_call():
    batches: list[list[str]] = []
    batcher = AdaptiveBatcher(_echo(batches), max_batch_size=8, max_latency_s=0.3)
    try:
        assert _submit_together(batcher, ["a", "b", "c"]) == ["dubbed a", "dubbed b", "dubbed c"]
    finally:
        batcher.close()
    assert batches == [["a", "b", "c"]]


def test_batches_are_capped_and_batching_can_be_turned_off():
    capped: list[list[str]] = []
    batcher = AdaptiveBatcher(_echo(capped), max_batch_size=2, max_latency_s=0.3)
    _submit_together(batcher, list("abcde"))
    batcher.close()
    assert [len(b) for b in capped] == [2, 2, 1]
    single: list[list[str]] = []
    batcher = AdaptiveBatcher(_echo(single), max_batch_size=1, max_latency_s=0.3)
    _submit_together(batcher, list("abc"))
    batcher.close()
    assert [len(b) for b in single] == [1, 1, 1]


def test_a_full_queue_is_refused_with_a_retry_time():
    release = threading.Event()

    def slow(requests):
        release.wait(5)
        return list(requests)

    batcher = AdaptiveBatcher(slow, max_batch_size=1, max_latency_s=0.0, max_queue=1)
    try:
        first = batcher.submit("busy", 10)
        deadline = time.monotonic() + 5
        while batcher._queue.qsize() and time.monotonic() < deadline:  # the worker took it
            time.sleep(0.01)
        batcher.submit("waiting", 10)
        with pytest.raises(QueueFullError) as refused:
            batcher.submit("one too many", 10)
        assert refused.value.retry_after >= 1
    finally:
        release.set()
        assert first.future.result(5) == "busy"
        batcher.close()


def test_a_timed_out_request_stops_its_work_at_the_next_step():
    steps: list[int] = []

    def endless(requests):
        for step in range(10_000):
            raise_if_stopped()
            steps.append(step)
            time.sleep(0.01)
        return list(requests)

    batcher = AdaptiveBatcher(endless, max_batch_size=1, max_latency_s=0.0)
    with pytest.raises(RequestTimeoutError):
        batcher.dub("slow", timeout_s=0.3)
    done = len(steps)
    time.sleep(0.3)
    assert len(steps) - done <= 1  # stopped: no further steps ran
    assert done < 100
    batcher.close()


def test_one_bad_request_does_not_fail_its_batch_mates():
    def picky(requests):
        if "bad" in requests:
            raise InputError("script: it is empty")
        return [f"ok {r}" for r in requests]

    batcher = AdaptiveBatcher(picky, max_batch_size=4, max_latency_s=0.3)
    tickets = [batcher.submit(n, 10) for n in ("a", "bad", "b")]
    assert tickets[0].future.result(10) == "ok a"
    assert tickets[2].future.result(10) == "ok b"
    with pytest.raises(InputError, match="script"):
        tickets[1].future.result(10)
    batcher.close()


def test_close_drains_queued_work_and_then_refuses():
    batches: list[list[str]] = []
    batcher = AdaptiveBatcher(_echo(batches), max_batch_size=1, max_latency_s=0.0)
    tickets = [batcher.submit(n, 10) for n in "abc"]
    batcher.close(drain=True, timeout=10)
    assert [t.future.result(0) for t in tickets] == ["dubbed a", "dubbed b", "dubbed c"]
    with pytest.raises(QueueFullError):
        batcher.submit("late", 10)


def test_an_async_caller_that_times_out_or_leaves_abandons_its_work_and_the_worker_lives():
    import asyncio

    steps: list[int] = []

    def endless(requests):
        if requests == ["quick"]:
            return ["done"]
        for step in range(10_000):
            raise_if_stopped()
            steps.append(step)
            time.sleep(0.01)
        return list(requests)

    batcher = AdaptiveBatcher(endless, max_batch_size=1, max_latency_s=0.0)

    async def scenario() -> None:
        with pytest.raises(RequestTimeoutError):
            await batcher.dub_async("slow", timeout_s=0.3)
        leaving = asyncio.ensure_future(batcher.dub_async("slow", timeout_s=30))
        await asyncio.sleep(0.3)
        leaving.cancel()  # the HTTP client hung up
        with pytest.raises(asyncio.CancelledError):
            await leaving
        assert await batcher.dub_async("quick", timeout_s=10) == "done"  # the worker lives

    asyncio.run(scenario())
    assert len(steps) < 100  # both slow dubs stopped within a few steps
    batcher.close()
