"""A real Prometheus on loopback, for tests and for drawing the dashboard without a cluster.

:class:`LocalPrometheus` runs the ``prometheus`` binary (Debian's package:
``apt-get install prometheus``) on ``127.0.0.1`` with a temporary config that
scrapes one target every second and evaluates the rule files every second, so a
test sees a recording rule or an alert move within seconds instead of minutes.
:func:`query`, :func:`query_range` and :func:`alerts` read any Prometheus's HTTP
API (``/api/v1``); the class's methods are the same calls on its own URL.

The API is read with ``urllib``: the library needs no HTTP client beyond the
standard library.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

RULES_FILE = Path(__file__).parent / "rules" / "dubops.rules.yml"
JOB = "dubops"  # the scrape job DubOpsModelNotLoaded reads `up` of
BINARY = "prometheus"


class PrometheusError(RuntimeError):
    """Prometheus refused a query (its ``errorType`` and ``error`` are in the message)."""


class LocalPrometheus:
    """One ``prometheus`` process scraping ``target``; use it as a context manager.

    Args:
        target: ``host:port`` of the server to scrape.
        rule_files: rule files to load (evaluated every ``interval``).
        metrics_path: the target's metrics route.
        interval: scrape and evaluation interval (Prometheus duration).
        job: the scrape job's name (the ``job`` label of ``up``).
        binary: the ``prometheus`` executable (a name on PATH or a path).
    """

    def __init__(
        self,
        target: str,
        rule_files: Sequence[str | Path] = (),
        metrics_path: str = "/metrics",
        interval: str = "1s",
        job: str = JOB,
        binary: str = BINARY,
    ) -> None:
        self.target = target
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.metrics_path = metrics_path
        self.interval = interval
        self.job = job
        self.binary = binary
        self.url = ""
        self.folder: Path | None = None
        self.process: subprocess.Popen | None = None

    def config(self) -> dict[str, Any]:
        """The prometheus.yml this instance runs with."""
        return {
            "global": {
                "scrape_interval": self.interval,
                "scrape_timeout": self.interval,
                "evaluation_interval": self.interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": self.job,
                    "metrics_path": self.metrics_path,
                    "static_configs": [{"targets": [self.target]}],
                }
            ],
        }

    def start(self, timeout: float = 60.0) -> LocalPrometheus:
        """Start the process and wait for ``/-/ready``.

        Raises:
            FileNotFoundError: no ``prometheus`` binary (the message says how to install it).
            RuntimeError: it exited or was not ready within ``timeout`` (with its log).
        """
        from dubops.serving.client import free_port

        executable = shutil.which(self.binary)
        if executable is None:
            raise FileNotFoundError(
                f"{self.binary}: not found; install it with `apt-get install prometheus`"
            )
        self.folder = Path(tempfile.mkdtemp(prefix="dubops-prometheus-"))
        config = self.folder / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        address = f"127.0.0.1:{free_port()}"
        self.url = f"http://{address}"
        log = (self.folder / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                executable,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.folder / 'data'}",
                f"--web.listen-address={address}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_ready(timeout)
        logger.info("prometheus at %s scraping %s", self.url, self.target)
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"prometheus not ready in {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the process's log (for failure messages)."""
        if self.folder is None or not (self.folder / "prometheus.log").is_file():
            return ""
        text = (self.folder / "prometheus.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and delete its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> LocalPrometheus:
        return self.start() if self.process is None else self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        return query(self.url, expr, at)

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return query_range(self.url, expr, start, end, step)

    def alerts(self) -> list[dict[str, Any]]:
        return alerts(self.url)


def query(url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    """An instant query's result: ``[{metric: {labels}, value: [t, "v"]}, ...]``.

    Raises:
        PrometheusError: the expression is invalid or its evaluation failed.
    """
    params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
    return _api(url, "query", params)["result"]


def query_range(url: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    """A range query's result: ``[{metric: {labels}, values: [[t, "v"], ...]}, ...]``
    (``start``, ``end`` in Unix seconds, ``step`` in seconds)."""
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
    return _api(url, "query_range", params)["result"]


def alerts(url: str) -> list[dict[str, Any]]:
    """The active (pending and firing) alerts: ``[{labels, annotations, state, ...}]``."""
    return _api(url, "alerts", {})["alerts"]


def _api(url: str, route: str, params: dict[str, str]) -> dict[str, Any]:
    address = f"{url}/api/v1/{route}"
    if params:
        address += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(address, timeout=30) as answer:
            body = json.loads(answer.read())
    except urllib.error.HTTPError as exc:  # 400 / 422: Prometheus says why in the body
        try:
            body = json.loads(exc.read())
        except ValueError:
            raise PrometheusError(f"{route} {params}: HTTP {exc.code}") from None
    if body.get("status") != "success":
        raise PrometheusError(
            f"{route} {params.get('query', '')!r}: {body.get('errorType')}: {body.get('error')}"
        )
    return body["data"]
