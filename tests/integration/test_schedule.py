"""``dubops pipeline schedule`` against a local server that speaks the KFP v2beta1 REST API.

A Kubernetes cluster cannot run here; the real ``kfp.Client`` code path runs against a
stdlib HTTP server that answers the endpoints the client calls (healthz, pipelines,
upload, versions, experiments, recurring runs) and records every request.
"""

from __future__ import annotations

import email
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from typer.testing import CliRunner

from dubops.cli.main import app

API = "/apis/v2beta1"


class FakeKfp:
    """State of the fake server: pipelines, versions, experiments, recurring runs, requests."""

    def __init__(self) -> None:
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, list[dict]] = {}
        self.experiments: dict[str, dict] = {}
        self.recurring: list[dict] = []
        self.uploads: list[bytes] = []
        self.requests: list[tuple[str, str]] = []


def _by_name(filter_json: str | None, items: list[dict]) -> list[dict]:
    if not filter_json:
        return items
    wanted = json.loads(filter_json)["predicates"][0]
    assert wanted["key"] == "display_name"
    return [i for i in items if i["display_name"] == wanted["stringValue"]]


def _uploaded_file(handler: BaseHTTPRequestHandler, body: bytes) -> bytes:
    head = f"Content-Type: {handler.headers['Content-Type']}\r\n\r\n".encode()
    message = email.message_from_bytes(head + body)
    (part,) = [p for p in message.walk() if p.get_param("name", header="content-disposition")]
    assert part.get_param("name", header="content-disposition") == "uploadfile"
    return part.get_payload(decode=True)


def make_handler(state: FakeKfp):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output quiet
            pass

        def _reply(self, data: dict, code: int = 200) -> None:
            blob = json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob)

        def do_GET(self):
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            state.requests.append(("GET", url.path))
            if url.path == f"{API}/healthz":
                return self._reply({"multi_user": False})
            if url.path == f"{API}/pipelines":
                found = _by_name(query.get("filter"), list(state.pipelines.values()))
                return self._reply({"pipelines": found, "total_size": len(found)} if found else {})
            if url.path.startswith(f"{API}/pipelines/") and url.path.endswith("/versions"):
                pipeline_id = url.path.split("/")[-2]
                versions = sorted(
                    state.versions[pipeline_id], key=lambda v: v["created_at"], reverse=True
                )
                return self._reply({"pipeline_versions": versions})
            if url.path == f"{API}/experiments":
                found = _by_name(query.get("filter"), list(state.experiments.values()))
                return self._reply({"experiments": found} if found else {})
            return self._reply({"error": f"not found: {url.path}"}, 404)

        def do_POST(self):
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append(("POST", url.path))
            now = f"2026-01-01T00:00:{len(state.requests):02d}Z"
            if url.path == f"{API}/pipelines/upload":
                state.uploads.append(_uploaded_file(self, body))
                pipeline = {
                    "pipeline_id": str(uuid.uuid4()),
                    "display_name": query["name"],
                    "created_at": now,
                }
                state.pipelines[pipeline["pipeline_id"]] = pipeline
                version = {
                    "pipeline_id": pipeline["pipeline_id"],
                    "pipeline_version_id": str(uuid.uuid4()),
                    "display_name": query["name"],
                    "created_at": now,
                }
                state.versions[pipeline["pipeline_id"]] = [version]
                return self._reply(pipeline)
            if url.path == f"{API}/pipelines/upload_version":
                state.uploads.append(_uploaded_file(self, body))
                version = {
                    "pipeline_id": query["pipelineid"],
                    "pipeline_version_id": str(uuid.uuid4()),
                    "display_name": query["name"],
                    "created_at": now,
                }
                state.versions[query["pipelineid"]].append(version)
                return self._reply(version)
            if url.path == f"{API}/experiments":
                experiment = json.loads(body) | {"experiment_id": str(uuid.uuid4())}
                state.experiments[experiment["experiment_id"]] = experiment
                return self._reply(experiment)
            if url.path == f"{API}/recurringruns":
                run = json.loads(body) | {"recurring_run_id": str(uuid.uuid4())}
                state.recurring.append(run)
                return self._reply(run)
            return self._reply({"error": f"not found: {url.path}"}, 404)

    return Handler


@pytest.fixture()
def kfp_server():
    state = FakeKfp()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


def _schedule(host: str, *args: str):
    return CliRunner().invoke(
        app, ["pipeline", "schedule", "--host", host, "--preset", "base", "--json", *args]
    )


def test_recurring_run_carries_cron_pipeline_and_experiment(kfp_server):
    host, state = kfp_server
    result = _schedule(host, "--cron", "0 0 3 * * *", "--experiment", "nightly")
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    (pipeline,) = state.pipelines.values()
    (experiment,) = state.experiments.values()
    (run,) = state.recurring
    assert pipeline["display_name"] == "dubops-training"
    assert experiment["display_name"] == "nightly"
    assert run["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
    assert run["experiment_id"] == experiment["experiment_id"] == created["experiment_id"]
    reference = run["pipeline_version_reference"]
    assert reference == {
        "pipeline_id": pipeline["pipeline_id"],
        "pipeline_version_id": state.versions[pipeline["pipeline_id"]][0]["pipeline_version_id"],
    }
    assert (
        run["mode"] == "ENABLE" and int(run["max_concurrency"]) == 1 and run["no_catchup"] is True
    )
    assert created["recurring_run_id"] == run["recurring_run_id"]
    # what was uploaded is the compiled pipeline, Kubernetes settings included
    spec, platform = yaml.safe_load_all(state.uploads[0])
    assert spec["pipelineInfo"]["name"] == "dubops-training"
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert "nodeSelector" in executors["exec-dit-pretrain"]


def test_second_schedule_adds_a_version_and_reuses_the_experiment(kfp_server):
    host, state = kfp_server
    assert _schedule(host, "--cron", "0 0 3 * * *", "--experiment", "nightly").exit_code == 0
    result = _schedule(host, "--cron", "0 30 4 * * 1-5", "--experiment", "nightly")
    assert result.exit_code == 0, result.output
    assert len(state.pipelines) == 1 and len(state.experiments) == 1
    (versions,) = state.versions.values()
    assert len(versions) == 2
    assert ("POST", f"{API}/pipelines/upload_version") in state.requests
    second = state.recurring[1]
    assert second["trigger"]["cron_schedule"]["cron"] == "0 30 4 * * 1-5"
    assert (
        second["pipeline_version_reference"]["pipeline_version_id"]
        == (versions[1]["pipeline_version_id"])
    )


def test_default_cron_and_experiment_come_from_the_config(kfp_server):
    host, state = kfp_server
    result = _schedule(host, "--set", "pipeline.schedule.cron=0 15 2 * * *")
    assert result.exit_code == 0, result.output
    assert state.recurring[0]["trigger"]["cron_schedule"]["cron"] == "0 15 2 * * *"
    (experiment,) = state.experiments.values()
    assert experiment["display_name"] == "dubops-retraining"


def test_a_bad_cron_is_refused_before_any_request(kfp_server):
    host, state = kfp_server
    result = _schedule(host, "--cron", "0 3 * * *")
    assert result.exit_code == 2
    assert "6" in result.output and "put the seconds first" in result.output
    assert state.requests == []


def test_an_unreachable_server_is_a_clear_error():
    result = _schedule("http://127.0.0.1:9", "--cron", "0 0 3 * * *")
    assert result.exit_code == 2, result.output
    assert "--host http://127.0.0.1:9" in result.output
