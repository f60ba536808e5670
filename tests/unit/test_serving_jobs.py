"""The durable job queue: real SQLite files, real worker threads, no mocks.

These are the promises the HTTP server relies on: a retried POST never makes a second
job, two workers never dub the same film twice, a cancel stops the work, and a server
killed mid-job neither loses the job nor leaves it ``running`` forever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dubops.cancellation import Cancelled
from dubops.errors import InputError
from dubops.serving.jobs import Job, JobRunner, JobStore


def wait_for(predicate: Callable[[], Any], timeout: float = 1.5) -> Any:
    """Poll until ``predicate`` is truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out after {timeout} s")


def wait_state(store: JobStore, job_id: str, *states: str) -> Job:
    def reached() -> Job | None:
        job = store.get(job_id)
        return job if job is not None and job.state in states else None

    return wait_for(reached)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "queue" / "jobs.db"  # the parent folder does not exist yet


@pytest.fixture
def runners() -> Iterator[list[JobRunner]]:
    """Runners a test starts; stopped at the end so no worker thread outlives its test."""
    started: list[JobRunner] = []
    yield started
    for runner in started:
        runner.stop(drain=False, timeout=1.0)


def start(runners: list[JobRunner], store: JobStore, work, **options: Any) -> JobRunner:
    runner = JobRunner(store, work, poll_s=0.02, **options)
    runner.start()
    runners.append(runner)
    return runner


def test_same_idempotency_key_gives_one_job(db: Path) -> None:
    store = JobStore(db)
    first, created = store.create({"video": "a.mp4"}, idempotency_key="k1")
    again, created_again = store.create({"video": "other.mp4"}, idempotency_key="k1")
    assert (created, created_again) == (True, False)
    assert again.id == first.id and again.request == {"video": "a.mp4"}
    assert store.counts()["queued"] == 1
    _, unkeyed = store.create({"video": "b.mp4"})
    assert unkeyed and store.queued_count() == 2
    public = first.to_json()
    assert "request" not in public and public["state"] == "queued" and public["attempts"] == 0


def test_same_idempotency_key_from_eight_threads_at_once(db: Path) -> None:
    JobStore(db)  # the schema, before the race
    barrier = threading.Barrier(8)
    results: list[tuple[Job, bool]] = []

    def post() -> None:
        store = JobStore(db)  # one connection each: the UNIQUE constraint decides
        barrier.wait()
        results.append(store.create({"video": "a.mp4"}, idempotency_key="race"))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(results) == 8
    assert len({job.id for job, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(JobStore(db).list()) == 1


def test_two_runners_never_run_the_same_job_twice(db: Path, runners: list[JobRunner]) -> None:
    calls: Counter[str] = Counter()
    lock = threading.Lock()

    def work(job: Job, report, should_stop) -> dict:
        with lock:
            calls[job.id] += 1
        report("generate", 0.5)
        return {"n": job.request["n"]}

    first = start(runners, JobStore(db), work, workers=2)
    second = start(runners, JobStore(db), work, workers=2)
    producer = JobStore(db)
    ids = []
    for n in range(20):
        ids.append(producer.create({"n": n})[0].id)
        first.notify()
        second.notify()
    wait_for(lambda: producer.counts()["succeeded"] == 20)
    assert calls == Counter(dict.fromkeys(ids, 1))
    assert all(job.attempts == 1 for job in producer.list())
    assert [producer.get(i).result for i in ids] == [{"n": n} for n in range(20)]


def test_claim_next_from_eight_connections_claims_each_job_once(db: Path) -> None:
    producer = JobStore(db)
    ids = {producer.create({"n": n})[0].id for n in range(40)}
    barrier = threading.Barrier(8)
    claimed: list[str] = []

    def worker() -> None:
        store = JobStore(db)
        barrier.wait()
        while (job := store.claim_next()) is not None:
            claimed.append(job.id)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert sorted(claimed) == sorted(ids)
    assert producer.counts()["running"] == 40 and producer.claim_next() is None


def test_progress_and_stage_are_visible_while_running(db: Path, runners) -> None:
    reported, release = threading.Event(), threading.Event()

    def work(job: Job, report, should_stop) -> dict:
        report("embed", 0.4)
        reported.set()
        assert release.wait(2)
        return {"video": "out.mp4"}

    store = JobStore(db)
    runner = start(runners, store, work)
    job, _ = store.create({"video": "a.mp4"})
    runner.notify()
    assert reported.wait(2)
    seen = store.get(job.id)
    assert (seen.state, seen.stage, seen.progress, seen.attempts) == ("running", "embed", 0.4, 1)
    assert seen.started is not None and seen.finished is None
    assert runner.running_ids() == [job.id]
    release.set()
    done = wait_state(store, job.id, "succeeded")
    assert done.result == {"video": "out.mp4"} and done.progress == 1.0
    assert done.finished >= done.started and done.updated >= done.finished


def test_cancel_stops_running_work(db: Path, runners) -> None:
    started, stopped_seen = threading.Event(), threading.Event()
    steps_after_stop: list[int] = []
    outcomes: list[str] = []

    def work(job: Job, report, should_stop) -> dict:
        started.set()
        for step in range(10_000):
            if should_stop():
                stopped_seen.set()
                raise Cancelled("cancelled by the client")
            if stopped_seen.is_set():
                steps_after_stop.append(step)  # never reached: the check above raises
            report("generate", step / 10_000)
            time.sleep(0.002)
        return {"video": "should not exist"}

    store = JobStore(db)
    runner = start(runners, store, work, on_outcome=outcomes.append)
    job, _ = store.create({"video": "a.mp4"})
    runner.notify()
    assert started.wait(2)
    assert runner.cancel(job.id).state == "cancelled"
    assert stopped_seen.wait(2)
    wait_for(lambda: outcomes == ["cancelled"])
    assert runner.running_ids() == [] and steps_after_stop == []
    final = store.get(job.id)
    assert final.state == "cancelled" and final.result is None and final.error is None


def test_cancel_queued_finished_and_ignored(db: Path, runners) -> None:
    outcomes: list[str] = []
    started = threading.Event()

    def stubborn(job: Job, report, should_stop) -> dict:
        started.set()
        wait_for(should_stop)
        return {"late": True}  # ignores the stop: the job must still end cancelled

    store = JobStore(db)
    queued, _ = store.create({"video": "queued.mp4"})
    idle = JobRunner(store, stubborn, on_outcome=outcomes.append)  # not started
    assert idle.cancel(queued.id).state == "cancelled" and outcomes == ["cancelled"]
    assert idle.cancel("no-such-job") is None
    finished, _ = store.create({"video": "done.mp4"})
    assert store.claim_next().id == finished.id and store.finish(finished.id, {"ok": 1})
    assert idle.cancel(finished.id).state == "succeeded"  # a finished job stays as it is
    assert outcomes == ["cancelled"]

    runner = start(runners, store, stubborn, on_outcome=outcomes.append)
    job, _ = store.create({"video": "a.mp4"})
    runner.notify()
    assert started.wait(2)
    runner.cancel(job.id)
    wait_for(lambda: len(outcomes) == 2)
    final = store.get(job.id)
    assert final.state == "cancelled" and final.result is None
    store.finish(job.id, {"late": True})  # a finished or cancelled job is never rewritten
    assert store.get(job.id).state == "cancelled"


def test_cancel_from_another_store_stops_the_work_at_its_next_report(db: Path, runners) -> None:
    started, stopped = threading.Event(), threading.Event()

    def work(job: Job, report, should_stop) -> dict:
        started.set()
        while not should_stop():
            report("vocode", 0.5)  # the report finds the job cancelled and sets the flag
            time.sleep(0.002)
        stopped.set()
        raise Cancelled("stopped")

    store = JobStore(db)
    start(runners, store, work)
    job, _ = store.create({"video": "a.mp4"})
    assert started.wait(2)
    assert JobStore(db).cancel(job.id).state == "cancelled"  # another replica's API call
    assert stopped.wait(2)
    assert wait_state(store, job.id, "cancelled").result is None


def test_crash_recovery_requeues_or_fails(db: Path, runners, caplog) -> None:
    crashed = JobStore(db)  # the server that was killed (kill -9): claims, never finishes
    retried, _ = crashed.create({"video": "retried.mp4"})
    assert crashed.claim_next().id == retried.id
    assert crashed.recover(max_attempts=2) == {"requeued": 1, "failed": 0}  # restart 1
    assert crashed.claim_next().attempts == 2  # and killed again
    fresh, _ = crashed.create({"video": "fresh.mp4"})
    assert crashed.claim_next().id == fresh.id
    assert crashed.counts()["running"] == 2

    store = JobStore(db)
    with caplog.at_level(logging.INFO, logger="dubops.serving.jobs"):
        start(runners, store, lambda job, report, stop: {"ok": True}, max_attempts=2)
    assert "1 requeued, 1 failed" in caplog.text
    final = wait_state(store, fresh.id, "succeeded")
    assert final.attempts == 2 and final.result == {"ok": True}
    given_up = store.get(retried.id)
    assert given_up.state == "failed"
    assert given_up.error == "interrupted 2 times (server restarts); not retried"
    counts = store.counts()
    assert counts["running"] == 0 and counts["queued"] == 0


def test_stop_without_drain_leaves_the_job_for_recovery(db: Path, runners) -> None:
    started = threading.Event()

    def work(job: Job, report, should_stop) -> dict:
        started.set()
        wait_for(should_stop)
        raise Cancelled("server shutting down")

    store = JobStore(db)
    runner = start(runners, store, work)
    job, _ = store.create({"video": "a.mp4"})
    runner.notify()
    assert started.wait(2)
    runner.stop(drain=False, timeout=2)
    assert store.get(job.id).state == "running"  # not failed, not cancelled: recoverable

    start(runners, JobStore(db), lambda job, report, stop: {"ok": True})
    assert wait_state(store, job.id, "succeeded").attempts == 2


def test_failing_work_fails_the_job_and_the_worker_goes_on(db: Path, runners) -> None:
    outcomes: list[str] = []

    def work(job: Job, report, should_stop) -> dict:
        report("read", 0.1)
        if job.request["kind"] == "user":
            raise InputError("video: no audio stream in a.mp4")
        if job.request["kind"] == "bug":
            raise KeyError("speaker")
        return {"ok": True}

    store = JobStore(db)
    runner = start(runners, store, work, on_outcome=outcomes.append)
    user, _ = store.create({"kind": "user"})
    bug, _ = store.create({"kind": "bug"})
    fine, _ = store.create({"kind": "fine"})
    runner.notify()
    wait_state(store, fine.id, "succeeded")
    assert store.get(user.id).error == "video: no audio stream in a.mp4"
    assert store.get(bug.id).error == "KeyError: 'speaker'"
    assert [store.get(i).state for i in (user.id, bug.id)] == ["failed", "failed"]
    assert outcomes == ["failed", "failed", "succeeded"]
    assert [job.id for job in store.list(states=["failed"])] == [bug.id, user.id]


def test_stop_with_drain_waits_for_the_running_job(db: Path, runners) -> None:
    started, release = threading.Event(), threading.Event()

    def work(job: Job, report, should_stop) -> dict:
        started.set()
        assert release.wait(2)
        return {"stopped": should_stop()}

    store = JobStore(db)
    runner = start(runners, store, work)
    job, _ = store.create({"video": "a.mp4"})
    runner.notify()
    assert started.wait(2)
    stopper = threading.Thread(target=runner.stop, kwargs={"drain": True, "timeout": 5})
    stopper.start()
    stopper.join(0.1)
    assert stopper.is_alive() and store.get(job.id).state == "running"
    queued, _ = store.create({"video": "b.mp4"})  # stopping: no new claims
    release.set()
    stopper.join(2)
    assert not stopper.is_alive()
    assert store.get(job.id).result == {"stopped": False}
    assert store.get(queued.id).state == "queued"
