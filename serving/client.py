"""A small HTTP client of the BentoML API, and a served dub end to end (``make demo``).

:class:`DubbingClient` is what a product team's code does with curl: post a clip,
poll a job, download the files. :func:`serve_and_dub` starts ``dubops serve bento``
on loopback, dubs one clip through the API (sync, then as a job), saves the files
and stops the server, so the demo shows the path a user calls.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dubops.errors import DubOpsError

logger = logging.getLogger(__name__)


class ServerError(DubOpsError):
    """The server answered an error (its status and message) or never became ready."""


class DubbingClient:
    """``POST /dub``, ``/jobs``, ``GET /artifacts/{id}`` with an optional bearer token."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 600.0) -> None:
        import httpx

        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def wait_ready(self, timeout: float = 300.0, process: subprocess.Popen | None = None) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise ServerError(f"the server exited with code {process.returncode}")
            try:
                if self.http.get("/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise ServerError(f"the server was not ready within {timeout:g} s")

    def dub(self, video: bytes, prompt: bytes, script: str, **fields: Any) -> dict[str, Any]:
        """A sync dub; the answer's ``artifacts`` name the wav (and mp4)."""
        return self._json(self.http.post("/dub", json=_body(video, prompt, script, fields)))

    def submit_job(
        self, video: bytes, prompt: bytes, script: str, key: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else {}
        body = _body(video, prompt, script, fields)
        return self._json(self.http.post("/jobs", json=body, headers=headers))

    def wait_job(self, job_id: str, timeout: float = 1800.0) -> dict[str, Any]:
        """Poll until the job is finished; its result (or :class:`ServerError`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self._json(self.http.get(f"/jobs/{job_id}"))
            if job["state"] == "succeeded":
                return self._json(self.http.get(f"/jobs/{job_id}/result"))
            if job["state"] in ("failed", "cancelled"):
                raise ServerError(f"job {job_id} {job['state']}: {job.get('error')}")
            time.sleep(0.5)
        raise ServerError(f"job {job_id} not finished within {timeout:g} s")

    def download(self, artifact_id: str, path: Path) -> Path:
        response = self.http.get(f"/artifacts/{artifact_id}")
        if response.status_code != 200:
            self._json(response)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(response.content)
        return path

    @staticmethod
    def _json(response: Any) -> dict[str, Any]:
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise ServerError(f"HTTP {response.status_code}: {message}")
        return response.json()


def free_port() -> int:
    """A loopback port nothing listens on now (for a server started next)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _body(video: bytes, prompt: bytes, script: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "script": script,
        "video_b64": base64.b64encode(video).decode("ascii"),
        "prompt_b64": base64.b64encode(prompt).decode("ascii"),
        **fields,
    }


def serve_and_dub(
    serve_args: list[str], port: int, clip: dict[str, Any], out: Path, log: Path
) -> dict[str, Path]:
    """Start ``dubops serve bento`` with ``serve_args``, dub ``clip`` (``video``, ``prompt``
    and ``script``, plus any other request fields) sync and as a job, save the files into
    ``out``, stop the server (SIGTERM: it drains)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "dubops.cli.main", "serve", "bento", "--port", str(port)]
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [*command, *serve_args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    saved: dict[str, Path] = {}
    try:
        client = DubbingClient(f"http://127.0.0.1:{port}", os.environ.get("DUBOPS_API_TOKEN"))
        client.wait_ready(process=process)
        media = {k: clip[k] for k in ("video", "prompt", "script")}
        fields = {k: v for k, v in clip.items() if k not in media}  # clip_id, react, ...
        answer = client.dub(**media, **fields, mp4=True)
        for kind, artifact in answer["artifacts"].items():
            saved[f"sync.{kind}"] = client.download(artifact, out / f"served_sync.{kind}")
        job = client.submit_job(**media, **fields, key=f"demo-{clip['clip_id']}")
        result = client.wait_job(job["id"])
        for kind, artifact in result["artifacts"].items():
            saved[f"job.{kind}"] = client.download(artifact, out / f"served_job.{kind}")
        (out / "served_sync.json").write_text(_pretty(answer))
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    return saved


def _pretty(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, indent=2) + "\n"
