"""``dubops serve kserve`` as a real subprocess: v1 and v2 dubbing, errors, auth, metrics.

One server for the module (the micro champion, registered in a private MLflow
store), started with an API token so every request here also proves the token
check; it is polled from the moment it starts, so the readiness it reports while
the model loads is observed, not assumed. The last test stops it with SIGTERM.
"""

from __future__ import annotations

import base64
import io
import json

import httpx
import pytest

from tests.fixtures.served_model import clip_media, start_server

pytestmark = pytest.mark.slow

TOKEN = "kserve-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PREDICT = "/v1/models/dubbing:predict"
INFER = "/v2/models/dubbing/infer"


@pytest.fixture(scope="module")
def champion(served_champion):
    return served_champion


@pytest.fixture(scope="module")
def server(champion, tmp_path_factory):
    """The server, once its model is ready; ``seen`` holds the readiness it reported."""
    root = tmp_path_factory.mktemp("kserve_server")
    state = ["--state-dir", str(root / "state")]
    running = start_server(
        "kserve", champion, root / "server.log", *state, env={"DUBOPS_API_TOKEN": TOKEN}
    )
    try:
        running.seen = _wait_ready(running)  # type: ignore[attr-defined]
        yield running
    finally:
        running.stop()


def _wait_ready(server, timeout: float = 240.0) -> list[tuple[int, int]]:
    """Poll (server ready, model ready) status pairs until the model answers 200."""
    import time

    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited {server.process.returncode}:\n{server.tail()}")
        try:
            health = httpx.get(server.url + "/v2/health/ready", timeout=2).status_code
            model = httpx.get(server.url + "/v2/models/dubbing/ready", timeout=2).status_code
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        seen.append((health, model))
        if model == 200:
            return seen
        time.sleep(0.2)
    raise TimeoutError(f"model not ready in {timeout} s:\n{server.tail()}")


@pytest.fixture(scope="module")
def media(champion):
    return clip_media(champion)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _instance(media, **extra) -> dict:
    """A v1 instance in KServe's convention: media as ``{"b64": ...}``."""
    return {
        "script": media["script"],
        "video": {"b64": _b64(media["video"])},
        "prompt": {"b64": _b64(media["prompt"])},
        **extra,
    }


def _post(server, path: str, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(
        server.url + path, json=body, headers=AUTH if headers is None else headers, timeout=180
    )


def _seconds(video: bytes) -> float:
    import av

    with av.open(io.BytesIO(video)) as container:
        return container.duration / 1e6


def _wav_seconds(text: str) -> float:
    import soundfile as sf

    wave, rate = sf.read(io.BytesIO(base64.b64decode(text)))
    assert wave.ndim == 1 and len(wave) > 0
    return len(wave) / rate


def test_ready_only_once_the_model_is_loaded(server):
    # Server readiness follows the model: never "server ready" while the model is not.
    assert all(model == 200 or health == 503 for health, model in server.seen), server.seen
    assert all(model in (200, 503) for _, model in server.seen), server.seen
    assert httpx.get(server.url + "/v2/health/ready").status_code == 200
    answer = httpx.get(server.url + "/v1/models/dubbing")
    assert answer.status_code == 200 and answer.json()["ready"] is True
    assert httpx.get(server.url + "/v2/health/live").status_code == 200


def test_v1_dubs_a_held_out_clip(server, champion, media):
    answer = _post(server, PREDICT, {"instances": [_instance(media, clip_id=media["clip_id"])]})
    assert answer.status_code == 200, answer.text
    [prediction] = answer.json()["predictions"]
    assert _wav_seconds(prediction["audio_b64"]) == pytest.approx(
        _seconds(media["video"]), rel=0.05
    )
    assert "conclusion" in prediction and prediction["conclusion_source"]
    # The result names the registered model "name/version".
    assert prediction["model_version"] == f"dubbing/{champion.version}"
    # The bytes travel inline; KServe keeps no files (it has no route to fetch them).
    assert "mp4_b64" not in prediction and prediction["artifacts"] == {}


def test_v1_instances_are_dubbed_as_one_batch(server, media):
    body = {"instances": [_instance(media), _instance(media, mp4=True, seed=7)]}
    answer = _post(server, PREDICT, body)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p["batch_size"] for p in predictions] == [2, 2]
    assert "mp4_b64" not in predictions[0]
    assert base64.b64decode(predictions[1]["mp4_b64"])[4:8] == b"ftyp"


def test_v2_infer_with_bytes_inputs(server, champion, media):
    def tensor(name: str, value: str) -> dict:
        return {"name": name, "shape": [1], "datatype": "BYTES", "data": [value]}

    body = {
        "inputs": [
            tensor("script", media["script"]),
            tensor("video", _b64(media["video"])),
            tensor("prompt", _b64(media["prompt"])),
            tensor("emotion", "joy"),
        ]
    }
    answer = _post(server, INFER, body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    outputs = {o["name"]: o for o in data["outputs"]}
    assert set(outputs) == {"audio_b64", "result_json"}
    assert outputs["audio_b64"]["datatype"] == "BYTES" and outputs["audio_b64"]["shape"] == [1]
    assert _wav_seconds(outputs["audio_b64"]["data"][0]) == pytest.approx(
        _seconds(media["video"]), rel=0.05
    )
    result = json.loads(outputs["result_json"]["data"][0])
    assert result["conclusion_source"]["emotion"] == "override"
    assert data["model_version"] == f"dubbing/{champion.version}"


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"video": {"b64": "not base64!"}}, 400, ["video", "base64"]),
        ({"video": "wav"}, 415, ["video", "mp4"]),
        ({"script": ""}, 400, ["script", "missing"]),
        ({"video": None, "video_uri": "/etc/passwd"}, 400, ["video", "outside"]),
        ({"volume": 3}, 400, ["volume", "unknown"]),
    ],
    ids=["bad-base64", "wav-as-video", "empty-script", "path-outside-roots", "unknown-field"],
)
def test_v1_bad_input_is_a_4xx_naming_the_field(server, media, change, status, words):
    instance = {k: v for k, v in {**_instance(media), **change}.items() if v is not None}
    if change.get("video") == "wav":
        instance["video"] = {"b64": _b64(media["prompt"])}
    answer = _post(server, PREDICT, {"instances": [instance]})
    assert answer.status_code == status, answer.text
    message = answer.json()["error"]
    assert message.startswith("instances[0]: ") and all(w in message for w in words), message


def test_malformed_requests_are_400(server, media):
    answer = _post(server, PREDICT, {"instances": "clip"})
    assert answer.status_code == 400 and "instances" in answer.json()["error"]
    answer = _post(server, PREDICT, {"instances": [{"script": "Hi."}] * 17})  # max_queue 16
    assert answer.status_code == 413 and "17 clips" in answer.json()["error"]
    short = {"name": "script", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}
    video = {"name": "video", "shape": [1], "datatype": "BYTES", "data": [_b64(media["video"])]}
    answer = _post(server, INFER, {"inputs": [short, video]})
    assert answer.status_code == 400 and "one element per clip" in answer.json()["error"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}], ids=["none", "wrong"])
def test_the_token_is_required(server, media, headers):
    answer = _post(server, PREDICT, {"instances": [_instance(media)]}, headers=headers)
    assert answer.status_code == 401 and "authorization" in answer.json()["error"]
    answer = _post(server, INFER, {"inputs": []}, headers=headers)
    assert answer.status_code == 401


def test_metrics_on_the_same_port(server):
    text = httpx.get(server.url + "/metrics").text
    predict = 'endpoint="/v1/models/{model_name}:predict"'
    assert any(
        line.startswith("dubops_requests_total{") and predict in line and 'code="200"' in line
        for line in text.splitlines()
    ), text[:2000]
    assert any(
        line.startswith("dubops_requests_total{") and 'code="401"' in line
        for line in text.splitlines()
    )
    assert 'dubops_stage_seconds_count{server="kserve",stage="generate"}' in text
    assert 'dubops_model_loaded{server="kserve"} 1.0' in text


def test_sigterm_finishes_in_flight_work_then_exits(server, media):
    """SIGTERM while a dub runs: it is still answered (uvicorn drains, then the service)."""
    import signal
    import threading
    import time

    answers: list[httpx.Response] = []
    body = {"instances": [_instance(media, nfe=64), _instance(media, nfe=64)]}
    sender = threading.Thread(target=lambda: answers.append(_post(server, PREDICT, body)))
    sender.start()
    time.sleep(1.0)
    assert server.stop(signal.SIGTERM) == 0, server.tail()
    sender.join(30)
    [answer] = answers
    assert answer.status_code == 200, answer.text
    log = server.log.read_text(errors="replace")
    # The dub was still running when the signal came (else this proved nothing).
    assert log.index("Shutting down") < log.rindex('predict HTTP/1.1" 200'), server.tail()
    assert "dubbing model stopped" in log
