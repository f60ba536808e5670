"""Locust users for ``benchmarks/serving.py``: closed-loop ``POST /dub`` with one held-out clip.

Run by the driver as its own process (``locust -f benchmarks/locust_dubbing.py
--headless ...``), never imported by it: locust monkey-patches the standard library
with gevent at import, and in a process that already imported kserve/urllib3 that
patching dies in a RecursionError (DESIGN.md). So this file imports nothing from
``dubops`` and takes everything it needs from environment variables the driver sets:

``DUBOPS_BENCH_VIDEO``, ``DUBOPS_BENCH_PROMPT``
    paths of the clip's silent video and its timbre prompt (read and base64-encoded
    once per process, so the load generator spends no CPU re-encoding per request);
``DUBOPS_BENCH_SCRIPT``
    the clip's script;
``DUBOPS_BENCH_LOG``
    optional: a JSON-lines file getting one line per request (start time, seconds,
    status, audio seconds, the batch it rode in, its share of each step), so the
    driver computes exact percentiles and throughput itself instead of reading
    locust's rounded histogram;
``DUBOPS_BENCH_SEED``
    optional: the first seed (default 1).

Every request carries its own ``seed``: the server cannot answer from a cache, and
each request costs a real dub. Users wait for nothing between requests (closed
loop), so concurrency is exactly the user count. Anything but 200 is a failure.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import time
from functools import cache
from typing import IO, Any

from locust import HttpUser, constant, events, task

REQUEST_TIMEOUT_S = 600.0  # above the server's own limit: its 504 is what we want to see


@cache
def _clip() -> dict[str, Any]:
    """The request body without its seed, built once per locust process."""

    def b64(variable: str) -> str:
        with open(os.environ[variable], "rb") as f:
            return base64.b64encode(f.read()).decode()

    return {
        "script": os.environ["DUBOPS_BENCH_SCRIPT"],
        "video_b64": b64("DUBOPS_BENCH_VIDEO"),
        "prompt_b64": b64("DUBOPS_BENCH_PROMPT"),
    }


_seeds = itertools.count(int(os.environ.get("DUBOPS_BENCH_SEED", "1")))
_log: IO[str] | None = None


def _record(line: dict[str, Any]) -> None:
    """One JSON line per request in ``DUBOPS_BENCH_LOG`` (flushed: locust may be killed)."""
    global _log
    path = os.environ.get("DUBOPS_BENCH_LOG")
    if not path:
        return
    if _log is None:
        _log = open(path, "a")  # noqa: SIM115 - kept open for the run, closed at test_stop
    _log.write(json.dumps(line) + "\n")
    _log.flush()


@events.test_stop.add_listener
def _close_log(**_kwargs: Any) -> None:
    global _log
    if _log is not None:
        _log.close()
        _log = None


class DubbingUser(HttpUser):
    """Posts the same clip to ``/dub`` again and again, each time with a new seed."""

    wait_time = constant(0)

    def on_start(self) -> None:
        _clip()  # encode before the first request is timed

    @task
    def dub(self) -> None:
        seed = next(_seeds)
        began = time.time()
        tick = time.perf_counter()
        with self.client.post(
            "/dub",
            json={**_clip(), "seed": seed},
            name="/dub",
            timeout=REQUEST_TIMEOUT_S,
            catch_response=True,
        ) as response:
            seconds = time.perf_counter() - tick
            audio, batch, steps = None, None, None
            if response.status_code == 200:
                try:
                    body = response.json()
                    audio = float(body["audio_seconds"])
                    batch, steps = body.get("batch_size"), body.get("seconds")
                except (ValueError, KeyError, TypeError) as exc:
                    response.failure(f"200 without a readable result: {exc}")
                else:
                    response.success()
            else:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
            _record(
                {
                    "start": began,
                    "seconds": round(seconds, 4),
                    "status": response.status_code,
                    "ok": audio is not None,
                    "audio_seconds": audio,
                    "batch_size": batch,  # the server's dub_many call this request rode in
                    "step_seconds": steps,  # this request's share of each pipeline step
                    "seed": seed,
                }
            )
