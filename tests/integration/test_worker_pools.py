"""A failing or dying worker ends the command with its error, never a hang (real processes)."""

from __future__ import annotations

import os
import time

import pytest

from dubops.errors import InputError
from dubops.pools import WorkerDiedError, map_unordered


def square_or_fail(n: int) -> int:
    if n == 3:
        raise InputError("clip 3: unreadable wav")
    time.sleep(0.05)
    return n * n


def square_or_die(n: int) -> int:
    if n == 3:
        os._exit(9)  # what the kernel's OOM killer leaves behind: no result, no exception
    return n * n


def test_results_arrive_from_every_item():
    assert sorted(map_unordered(square_or_fail, [0, 1, 2, 4], workers=2)) == [0, 1, 4, 16]


def test_a_worker_error_is_raised_and_the_rest_cancelled():
    began = time.perf_counter()
    with pytest.raises(InputError, match="clip 3"):
        list(map_unordered(square_or_fail, range(200), workers=2, max_tasks_per_child=1))
    assert time.perf_counter() - began < 60


def test_a_dead_worker_is_an_error_not_a_hang():
    began = time.perf_counter()
    with pytest.raises(WorkerDiedError, match="died"):
        list(map_unordered(square_or_die, range(8), workers=2))
    assert time.perf_counter() - began < 60
