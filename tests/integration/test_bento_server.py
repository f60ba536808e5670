"""``dubops serve bento`` as a real ``bentoml serve`` subprocess on 127.0.0.1.

Two servers for the module, started together so their start-ups overlap: a
*functional* one with the default limits (sync dubs, jobs, cancel, the bad-input
table, Schemathesis, SIGTERM) and a *tight* one with a 4 s request limit, a queue
of one, batches of one, a 2 MiB upload limit and an API token (timeouts, the full
queue, 413s, auth, ``kill -9``). Each keeps its state folder, so a server stopped
on purpose is started again on the same folder: that is how the ``kill -9`` test
shows a job surviving its server.

Slow work is made on purpose with a long slot and many sampler steps
(:data:`SLOW`): minutes on the micro model, so a test that sees it stopped within
seconds knows it was stopped, not finished. Waiting is always a poll with a
deadline on something the server reports (a job's state, a ``/metrics`` counter).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.fixtures.served_model import (
    Champion,
    Server,
    alive,
    as_json_fields,
    clip_media,
    descendants,
    poll,
    start_server,
)

pytestmark = pytest.mark.slow

TOKEN = "secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# A 60 s slot at 256 sampler steps: minutes of work for the micro model.
SLOW = {"target_seconds": 60, "nfe": 256}
# Still minutes, in shorter steps: a timed-out dub stops at its next step, and the
# next dub on the tight server has to fit in what is left of its own 4 s.
SLOW_SYNC = {"target_seconds": 30, "nfe": 256}
TIGHT_TIMEOUT_S = 4
TIGHT = (
    f"serving.request_timeout_s={TIGHT_TIMEOUT_S}",
    "serving.max_queue=1",
    "serving.max_batch_size=1",
    "serving.max_upload_mb=2",
)
FINAL = ("succeeded", "failed", "cancelled")
T = TypeVar("T")


# -- servers -----------------------------------------------------------------------


@dataclass
class Served:
    """One server's flags and state folder; :meth:`start` (re)starts it on a new port.

    ``readiness`` holds the ``(/readyz, /livez)`` statuses seen from the moment the
    last start began until ``/readyz`` answered 200, so a test can check what the
    server said while its model was loading.
    """

    champion: Champion
    root: Path
    sets: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    warmup: dict[str, Any] | None = None  # a /dub body sent once the model is loaded
    server: Server | None = None
    readiness: list[tuple[int, int]] = field(default_factory=list)

    def launch(self) -> None:
        """Start the process (do not wait for it).

        Each server gets its own ``BENTOML_HOME``: ``bentoml serve`` wipes the
        Prometheus multiprocess folder under it at every start, and ``/metrics`` sums
        every file there, so servers sharing the default home (``~/bentoml``) would
        erase and mix each other's counters.
        """
        extra = ["--state-dir", str(self.root / "state")]
        extra += [a for s in self.sets for a in ("--set", s)]
        env = {**self.env, "BENTOML_HOME": str(self.root / "bentoml_home")}
        self.server = start_server(
            "bento", self.champion, self.root / "server.log", *extra, env=env
        )

    def wait(self, timeout: float = 240.0) -> None:
        """Poll readiness from now until the model is loaded, recording what was seen."""
        assert self.server is not None
        self.readiness = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.process.poll() is not None:
                raise RuntimeError(
                    f"server exited {self.server.process.returncode}:\n{self.server.tail()}"
                )
            try:
                ready = httpx.get(self.url + "/readyz", timeout=2).status_code
                live = httpx.get(self.url + "/livez", timeout=2).status_code
            except httpx.HTTPError:  # not listening yet
                time.sleep(0.2)
                continue
            self.readiness.append((ready, live))
            if ready == 200:
                if self.warmup is not None:  # any answer will do: it loads what loads lazily
                    httpx.post(
                        self.url + "/dub", json=self.warmup, headers=self.headers, timeout=60
                    )
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.url} not ready in {timeout} s:\n{self.server.tail()}")

    def start(self) -> None:
        self.launch()
        self.wait()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def live(self) -> str:
        """The URL of a running server (started again if a test stopped it)."""
        if self.server is None or self.server.process.poll() is not None:
            self.start()
        return self.url

    def kill(self) -> int:
        """``kill -9`` the server and every process under it (a node dying, not a drain).

        BentoML's workers run in sessions of their own, so killing the process group
        would leave the worker (and the job it runs) alive.
        """
        assert self.server is not None
        processes = [*descendants(self.server.process.pid), self.server.process.pid]
        for pid in processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        code = self.server.process.wait(30)
        poll(lambda: not any(alive(pid) for pid in processes), 30, "the killed processes gone")
        return code

    def stop(self) -> None:
        """SIGTERM (the server drains), then make sure no worker outlived it."""
        if self.server is None:
            return
        workers = descendants(self.server.process.pid)
        self.server.stop()
        for pid in workers:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def champion(served_champion) -> Champion:
    return served_champion


@pytest.fixture(scope="module")
def servers(champion, media, tmp_path_factory) -> Iterator[tuple[Served, Served]]:
    """Both servers, launched together (their ~25 s start-ups overlap).

    The tight one is warmed with a dub: the first dub of a process loads the text
    encoder, which alone can take longer than its 4 s limit on a busy machine.
    """
    functional = Served(champion, tmp_path_factory.mktemp("bento_functional"))
    tight = Served(
        champion,
        tmp_path_factory.mktemp("bento_tight"),
        sets=TIGHT,
        env={"DUBOPS_API_TOKEN": TOKEN},
        headers=AUTH,
        warmup=as_json_fields(media),
    )
    try:
        functional.launch()
        tight.launch()
        functional.wait()
        tight.wait()
        yield functional, tight
    finally:
        functional.stop()
        tight.stop()


@pytest.fixture(scope="module")
def functional(servers) -> Served:
    return servers[0]


@pytest.fixture(scope="module")
def tight(servers) -> Served:
    return servers[1]


@pytest.fixture(scope="module")
def media(champion) -> dict[str, Any]:
    return clip_media(champion)


# -- helpers -----------------------------------------------------------------------


def _metric(url: str, name: str, **labels: str) -> float:
    """The sum of one sample name's values in a ``/metrics`` scrape (over pids, too)."""
    from prometheus_client.parser import text_string_to_metric_families

    answer = httpx.get(url + "/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    return sum(
        sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def _batches(url: str) -> float:
    """How many ``dub_many`` calls the sync batcher has started (one per batch)."""
    return _metric(url, "dubops_batch_size_count", server="bento")


def _job(url: str, job_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    answer = httpx.get(f"{url}/jobs/{job_id}", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _wait_job(
    url: str, job_id: str, states: tuple[str, ...], timeout: float, headers: dict | None = None
) -> dict[str, Any]:
    return poll(
        lambda: (job := _job(url, job_id, headers))["state"] in states and job,
        timeout,
        f"job {job_id} reaching {states}",
    )


def _job_in_file(served: Served, job_id: str) -> dict[str, Any]:
    """A job as the server's jobs file holds it (the server may be dead)."""
    from dubops.serving.jobs import JobStore

    store = JobStore(served.root / "state" / "jobs.sqlite")
    try:
        job = store.get(job_id)
    finally:
        store.close()
    assert job is not None, job_id
    return job.to_json()


def _video_seconds(video: bytes) -> float:
    import av

    with av.open(io.BytesIO(video)) as container:
        return container.duration / 1e6


def _wav_seconds(data: bytes) -> float:
    import soundfile as sf

    wave, rate = sf.read(io.BytesIO(data))
    assert wave.ndim == 1 and len(wave) > 0 and abs(wave).max() > 0
    return len(wave) / rate


def _wav(samples: Any, rate: int = 24000) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _long_video(seconds: int) -> bytes:
    """A tiny black mp4 of ``seconds`` (1 fps): longer than a sync dub may be."""
    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=1)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        black = np.zeros((64, 64, 3), np.uint8)
        for _ in range(seconds):
            for packet in stream.encode(av.VideoFrame.from_ndarray(black, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buffer.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _multipart(media: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """httpx arguments for a multipart /dub: the files as parts, the rest as fields."""
    files = {
        "video": ("clip.mp4", fields.pop("video", media["video"]), "video/mp4"),
        "prompt": ("prompt.wav", fields.pop("prompt", media["prompt"]), "audio/wav"),
    }
    data = {"script": media["script"], **{k: str(v) for k, v in fields.items()}}
    return {"files": files, "data": data}


# -- 1. sync dubbing ---------------------------------------------------------------


def test_sync_dub_json_and_multipart(functional, champion, media):
    url = functional.live()
    as_json = httpx.post(url + "/dub", json=as_json_fields(media, mp4=True), timeout=120)
    as_form = httpx.post(url + "/dub", **_multipart(media, emotion="joy"), timeout=120)
    clip_seconds = _video_seconds(media["video"])
    for answer in (as_json, as_form):
        assert answer.status_code == 200, answer.text
        data = answer.json()
        # The registered model, "name/version".
        assert data["model_version"] == f"dubbing/{champion.version}"
        assert data["audio_seconds"] == pytest.approx(clip_seconds, rel=0.05)
        # Every conclusion field says where it came from.
        assert (
            set(data["conclusion"])
            == set(data["conclusion_source"])
            == {"scene_type", "gender", "age", "emotion"}
        )
        assert set(data["conclusion_source"].values()) <= {"reasoner", "override", "fallback"}
        wav = httpx.get(f"{url}/artifacts/{data['artifacts']['wav']}", timeout=30)
        assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
        assert _wav_seconds(wav.content) == pytest.approx(clip_seconds, rel=0.05)
    # The mp4 only when asked for, and it is one.
    assert set(as_form.json()["artifacts"]) == {"wav"}
    mp4 = httpx.get(f"{url}/artifacts/{as_json.json()['artifacts']['mp4']}", timeout=30)
    assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
    assert mp4.content[4:8] == b"ftyp"
    assert _video_seconds(mp4.content) == pytest.approx(clip_seconds, rel=0.1)
    # An override is used and reported as one.
    form = as_form.json()
    assert form["conclusion"]["emotion"] == "joy"
    assert form["conclusion_source"]["emotion"] == "override"


def test_metrics_show_our_series_in_one_scrape(functional, media):
    url = functional.live()
    assert httpx.post(url + "/dub", json=as_json_fields(media), timeout=120).status_code == 200
    text = httpx.get(url + "/metrics", timeout=10).text
    # BentoML's multiprocess registry carries ours (created after it set the mode up).
    assert "dubops_requests_total{" in text and 'endpoint="/dub"' in text
    assert "dubops_stage_seconds_bucket{" in text and 'stage="generate"' in text
    assert _metric(url, "dubops_requests_total", endpoint="/dub", code="200") >= 1
    assert _metric(url, "dubops_stage_seconds_count", stage="generate") >= 1


# -- 2. jobs ------------------------------------------------------------------------


def test_job_is_idempotent_and_succeeds(functional, media):
    url = functional.live()
    key = {"Idempotency-Key": f"test-{uuid.uuid4().hex}"}
    body = as_json_fields(media, target_seconds=6)
    first = httpx.post(url + "/jobs", json=body, headers=key, timeout=30)
    second = httpx.post(url + "/jobs", json=body, headers=key, timeout=30)
    assert first.status_code == 202, first.text
    assert second.status_code == 200, second.text
    job_id = first.json()["id"]
    assert second.json()["id"] == job_id
    # Not done yet: the result is a conflict that names the state.
    early = httpx.get(f"{url}/jobs/{job_id}/result", timeout=10)
    assert early.status_code == 409, early.text
    assert early.json()["state"] in ("queued", "running")
    done = _wait_job(url, job_id, FINAL, timeout=120)
    assert done["state"] == "succeeded", done
    assert done["progress"] == 1 and done["attempts"] == 1
    result = httpx.get(f"{url}/jobs/{job_id}/result", timeout=10)
    assert result.status_code == 200, result.text
    wav = httpx.get(f"{url}/artifacts/{result.json()['artifacts']['wav']}", timeout=30)
    assert _wav_seconds(wav.content) == pytest.approx(6, rel=0.05)


def test_unknown_job_is_404(functional):
    url = functional.live()
    for method, path in (
        ("GET", "/jobs/nope"),
        ("GET", "/jobs/nope/result"),
        ("DELETE", "/jobs/nope"),
    ):
        answer = httpx.request(method, url + path, timeout=10)
        assert answer.status_code == 404, (method, path, answer.text)
        assert "no such job" in answer.json()["error"]


# -- 3. cancel ----------------------------------------------------------------------


def test_cancel_stops_a_running_job(functional, media):
    url = functional.live()
    cancelled_before = _metric(url, "dubops_jobs_total", outcome="cancelled")
    job_id = httpx.post(url + "/jobs", json=as_json_fields(media, **SLOW), timeout=30).json()["id"]
    seen: list[int] = []

    def sampling() -> bool:
        answer = httpx.get(f"{url}/jobs/{job_id}", timeout=10)
        seen.append(answer.status_code)
        return answer.status_code == 200 and answer.json()["stage"] == "generate"

    poll(sampling, 60, "the job reaching the sampler")
    # The job pool is not the sync path: a dub is answered while the job samples (and
    # the job is polled all the while).
    with ThreadPoolExecutor(1) as pool:
        dub = pool.submit(httpx.post, url + "/dub", json=as_json_fields(media), timeout=120)
        poll(lambda: sampling() and dub.done(), 120, "the sync dub beside the job")
        assert dub.result().status_code == 200, dub.result().text
    assert _job(url, job_id)["state"] == "running"
    deleted = httpx.delete(f"{url}/jobs/{job_id}", timeout=10)
    assert deleted.status_code == 200 and deleted.json()["state"] == "cancelled", deleted.text
    # The worker reports the outcome only once the work has returned: minutes of
    # sampling left, so seeing it within seconds means the sampler stopped.
    poll(
        lambda: _metric(url, "dubops_jobs_total", outcome="cancelled") > cancelled_before,
        30,
        "the cancelled job's work ending",
    )
    assert f"job {job_id} cancelled" in functional.server.log.read_text(errors="replace")
    job = _job(url, job_id)
    assert job["state"] == "cancelled" and job["stage"] == "generate" and job["progress"] < 1
    gone = httpx.get(f"{url}/jobs/{job_id}/result", timeout=10)
    assert gone.status_code == 409 and gone.json()["state"] == "cancelled"
    # Polling a busy server is never throttled.
    assert set(seen) == {200} and len(seen) >= 3, seen


# -- 4. timeout -----------------------------------------------------------------------


def test_sync_timeout_answers_504_and_frees_the_model(tight, media):
    url = tight.live()
    tick = time.monotonic()
    slow = httpx.post(
        url + "/dub", json=as_json_fields(media, **SLOW_SYNC), headers=AUTH, timeout=120
    )
    spent = time.monotonic() - tick
    assert slow.status_code == 504, slow.text
    assert "stopped" in slow.json()["error"]
    # The deadline answered, not the dub's end (minutes away); slack for a busy machine.
    assert spent < TIGHT_TIMEOUT_S + 15, spent
    # Batches of one, one batch at a time: had the slow dub kept the model, this one
    # would wait past its own 4 s and be a 504 too.
    normal = httpx.post(url + "/dub", json=as_json_fields(media), headers=AUTH, timeout=60)
    assert normal.status_code == 200, normal.text


# -- 5. full queue ------------------------------------------------------------------


def test_full_queue_answers_429_and_health_stays_up(tight, media):
    url = tight.live()
    batches = _batches(url)
    with ThreadPoolExecutor(2) as pool:
        busy = pool.submit(
            httpx.post,
            url + "/dub",
            json=as_json_fields(media, **SLOW_SYNC),
            headers=AUTH,
            timeout=60,
        )
        poll(lambda: _batches(url) > batches, 10, "the slow dub reaching the model")
        waiting = pool.submit(
            httpx.post, url + "/dub", json=as_json_fields(media), headers=AUTH, timeout=60
        )
        poll(
            lambda: _metric(url, "dubops_queue_depth", queue="sync") >= 2,
            5,
            "the second dub queueing",
            interval=0.05,
        )
        refused = httpx.post(url + "/dub", json=as_json_fields(media), headers=AUTH, timeout=30)
        health = {p: httpx.get(url + p, timeout=10).status_code for p in HEALTH}
        assert busy.result().status_code == 504
        assert waiting.result().status_code in (200, 504)
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) >= 1
    assert "retry" in refused.json()["error"]
    assert health == dict.fromkeys(HEALTH, 200)


HEALTH = ("/livez", "/readyz", "/metrics")


# -- 6. upload limit and readiness -------------------------------------------------------


def test_body_over_the_limit_is_413(tight, media):
    url = tight.live()
    big = os.urandom(3 * 2**20)
    declared = httpx.post(
        url + "/dub", json=as_json_fields({**media, "video": big}), headers=AUTH, timeout=30
    )
    assert declared.status_code == 413, declared.text
    assert "upload limit" in declared.json()["error"]

    def chunks() -> Any:  # no Content-Length: the limit has to catch the stream
        boundary = b"--b0undary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="script"\r\n\r\nHi.\r\n'
        yield boundary + b'\r\nContent-Disposition: form-data; name="video"; filename="v.mp4"\r\n'
        yield b"Content-Type: video/mp4\r\n\r\n"
        for start in range(0, len(big), 2**16):
            yield big[start : start + 2**16]
        yield b"\r\n" + boundary + b"--\r\n"

    streamed = httpx.post(
        url + "/dub",
        content=chunks(),
        headers={**AUTH, "Content-Type": "multipart/form-data; boundary=b0undary"},
        timeout=30,
    )
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413, streamed.text
    assert "upload limit" in streamed.json()["error"]


def test_ready_only_once_the_model_is_loaded(functional):
    seen = functional.readiness
    # Alive at once, not ready while the model loads, then ready.
    assert seen[0] == (503, 200), seen
    assert all(live == 200 for _, live in seen), seen
    assert all(ready == 503 for ready, _ in seen[:-1]) and seen[-1][0] == 200, seen
    assert httpx.get(functional.live() + "/readyz", timeout=10).status_code == 200


# -- 7. auth --------------------------------------------------------------------------


def test_token_is_required_but_not_for_health(tight, media):
    url = tight.live()
    routes = (
        ("POST", "/dub", {"json": as_json_fields(media)}),
        ("POST", "/jobs", {"json": as_json_fields(media)}),
        ("GET", "/jobs/0123", {}),
        ("DELETE", "/jobs/0123", {}),
        ("GET", f"/artifacts/{'0' * 32}.wav", {}),
    )
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic c2VjcmV0"}):
        for method, path, kwargs in routes:
            answer = httpx.request(method, url + path, headers=headers, timeout=30, **kwargs)
            assert answer.status_code == 401, (headers, method, path, answer.text)
            assert "bearer token" in answer.json()["error"]
    for path in HEALTH:
        assert httpx.get(url + path, timeout=10).status_code == 200, path
    dubbed = httpx.post(url + "/dub", json=as_json_fields(media), headers=AUTH, timeout=60)
    assert dubbed.status_code == 200, dubbed.text
    wav = httpx.get(f"{url}/artifacts/{dubbed.json()['artifacts']['wav']}", headers=AUTH)
    assert wav.status_code == 200 and _wav_seconds(wav.content) > 0
    assert httpx.get(f"{url}/jobs/0123", headers=AUTH, timeout=10).status_code == 404


# -- 8. kill -9 ---------------------------------------------------------------------------


def test_jobs_survive_kill_9(tight, media):
    url = tight.live()

    def submit(**extra: Any) -> str:
        body = as_json_fields(media, **extra)
        answer = httpx.post(url + "/jobs", json=body, headers=AUTH, timeout=30)
        assert answer.status_code == 202, answer.text
        return answer.json()["id"]

    running = submit(target_seconds=10, nfe=32)
    queued = submit()  # behind it (one job worker)
    _wait_job(url, running, ("running",), timeout=60, headers=AUTH)
    assert tight.kill() == -signal.SIGKILL
    assert _job_in_file(tight, running)["state"] == "running"  # the kill caught it mid-run
    tight.start()  # the same state folder, a new port
    url = tight.url
    for job_id, seconds in ((running, 10.0), (queued, _video_seconds(media["video"]))):
        job = _wait_job(url, job_id, FINAL, timeout=180, headers=AUTH)
        assert job["state"] == "succeeded", job
        result = httpx.get(f"{url}/jobs/{job_id}/result", headers=AUTH, timeout=10).json()
        wav = httpx.get(f"{url}/artifacts/{result['artifacts']['wav']}", headers=AUTH)
        assert _wav_seconds(wav.content) == pytest.approx(seconds, rel=0.05)
    # The interrupted run counts: one more kill and it would fail, not loop.
    assert _job(url, running, AUTH)["attempts"] == 2
    assert _job(url, queued, AUTH)["attempts"] == 1


# -- 10. bad input --------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """One bad request: how to send it, the status it must get, a word its error says."""

    status: int
    keyword: str
    build: Callable[[dict[str, Any]], dict[str, Any]]  # media -> httpx.request kwargs
    path: str = "/dub"
    method: str = "POST"


def _json(**fields: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A JSON /dub of the clip with ``fields`` replaced (``None`` drops a field)."""

    def build(media: dict[str, Any]) -> dict[str, Any]:
        body = {**as_json_fields(media), **fields}
        return {"json": {k: v for k, v in body.items() if v is not None}}

    return build


def _form(**fields: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda media: _multipart(media, **fields)


def _ftyp_noise(_media: dict[str, Any]) -> dict[str, Any]:
    noise = b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096)
    return _multipart(_media, video=noise)


def _truncated(media: dict[str, Any]) -> dict[str, Any]:
    return _multipart(media, video=media["video"][: len(media["video"]) // 2])


def _short_prompt(media: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 2400)  # 0.1 s
    return _multipart(media, prompt=_wav(noise))


def _silent_prompt(media: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    return _multipart(media, prompt=_wav(np.zeros(48000)))  # 2 s of zeros


def _script_part(data: bytes) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The script as raw bytes: ``as_file`` sends it as a file part (arrives as bytes)."""

    def build(media: dict[str, Any]) -> dict[str, Any]:
        request = _multipart(media)
        del request["data"]["script"]
        request["files"]["script"] = ("script.txt", data, "text/plain")
        return request

    return build


def _body(content: bytes, kind: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda _media: {"content": content, "headers": {"Content-Type": kind}}


def _get(path: str, status: int, keyword: str) -> Bad:
    return Bad(status, keyword, lambda _media: {}, path, "GET")


BAD: dict[str, Bad] = {
    "corrupt video (ftyp + noise)": Bad(400, "video", _ftyp_noise),
    "empty video file": Bad(400, "empty", _form(video=b"")),
    "truncated mp4": Bad(400, "video", _truncated),
    "video longer than a sync dub": Bad(413, "/jobs", lambda m: _form(video=_long_video(32))(m)),
    "wav as video": Bad(415, "video", lambda m: _form(video=m["prompt"])(m)),
    "mp4 as prompt": Bad(415, "prompt", lambda m: _form(prompt=m["video"])(m)),
    "empty script": Bad(400, "script", _json(script="")),
    "whitespace script": Bad(400, "script", _json(script=" \t\n ")),
    "non-UTF-8 script (file part)": Bad(400, "UTF-8", _script_part(b"\xff\xfe\xfa bad")),
    "5,000-character script": Bad(400, "script", _json(script="la " * 1667)),
    "0.1 s prompt": Bad(400, "prompt", _short_prompt),
    "silent prompt": Bad(400, "silent", _silent_prompt),
    "artifacts/..%2f traversal": _get("/artifacts/..%2f..%2fetc%2fpasswd", 404, "not found"),
    "artifacts/../ traversal": _get("/artifacts/../../etc/passwd", 404, "not found"),
    "artifacts/..": _get("/artifacts/..", 400, "artifact"),
    "video_uri /etc/passwd": Bad(400, "allowed", _json(video_b64=None, video_uri="/etc/passwd")),
    "video_uri file:///etc/hosts": Bad(
        400, "allowed", _json(video_b64=None, video_uri="file:///etc/hosts")
    ),
    "video_uri with a NUL byte": Bad(400, "video", _json(video_b64=None, video_uri="/tmp/\x00x")),
    "unknown field": Bad(400, "unknown field", _json(colour="blue")),
    "bad emotion": Bad(400, "emotion", _json(emotion="happy")),
    "seed -1": Bad(400, "seed", _json(seed=-1)),
    "nfe 0": Bad(400, "nfe", _json(nfe=0)),
    "bad base64": Bad(400, "base64", _json(video_b64="not base64!")),
    "invalid JSON": Bad(400, "JSON", _body(b'{"script": ', "application/json")),
    "text/plain body": Bad(400, "content-type", _body(b"hi", "text/plain")),
    "Idempotency-Key over 200 characters": Bad(
        422,
        "idempotency",
        lambda m: {"json": as_json_fields(m), "headers": {"Idempotency-Key": "k" * 201}},
        "/jobs",
    ),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_a_4xx_that_names_the_problem(functional, media, case):
    bad = BAD[case]
    url = functional.live()
    kwargs = bad.build(media)
    if "/.." in bad.path:
        status, body = _raw_get(url, bad.path)  # httpx would drop the dot segments
    else:
        answer = httpx.request(bad.method, url + bad.path, timeout=60, **kwargs)
        status, body = answer.status_code, answer.content
    assert b"root:" not in body and b"localhost" not in body  # never /etc/passwd, /etc/hosts
    assert status == bad.status, body
    # Paths no route of ours matches get BentoML's own plain-text 404.
    error = body.decode() if status == 404 and b"{" not in body else json.loads(body)["error"]
    assert bad.keyword.lower() in error.lower(), error
    print(f"BAD | {case} | {status} | {error}")


def test_non_utf8_script_form_field_is_400(functional, media):
    request = _multipart(media)
    del request["data"]["script"]
    request["files"]["script"] = (None, b"\xff\xfe\xfa bad", None)  # a field, not a file
    answer = httpx.post(functional.live() + "/dub", timeout=60, **request)
    assert answer.status_code == 400, answer.text
    assert "UTF-8" in answer.json()["error"]


def _raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (dot segments and all)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# -- 11. Schemathesis -----------------------------------------------------------------------


def test_schemathesis_finds_no_server_error(functional, tmp_path):
    url = functional.live()
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        url + "/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "20",
        "--seed",
        "1",
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--no-shrink",
        "--include-path-regex",
        "^/(dub|jobs|artifacts)",
    ]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    print(run.stdout[-1500:])


# -- 9. SIGTERM ------------------------------------------------------------------------------


def test_sigterm_lets_the_in_flight_dub_finish(functional, media):
    url = functional.live()
    batches = _batches(url)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            httpx.post, url + "/dub", json=as_json_fields(media, target_seconds=8), timeout=120
        )
        poll(lambda: _batches(url) > batches, 30, "the dub reaching the model")
        code = functional.server.stop(signal.SIGTERM)
        answer = pending.result()
    assert answer.status_code == 200, answer.text
    assert answer.json()["audio_seconds"] == pytest.approx(8, rel=0.05)
    assert code == 0, functional.server.tail()
