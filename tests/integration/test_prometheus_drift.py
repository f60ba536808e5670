"""Drift end to end: a real BentoML server, a real Prometheus with our rules, the dashboard.

The champion carries a drift reference of every clip of the 48-clip corpus,
calibrated for windows of :data:`WINDOW` dubs. A Prometheus on loopback scrapes the
server every second and evaluates ``monitoring/rules/dubops.rules.yml`` every
second. Corpus clips sent through ``POST /dub`` fill the window without raising
``DubOpsInputDrift``; the same corpus re-encoded at 30 fps (it is 25 fps) then
fills it again and the alert fires. Every dashboard query then runs against that
Prometheus and the dashboard is drawn to a PNG (also to ``$DUBOPS_DASHBOARD_PNG``
when set).
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
import yaml

from dubops.monitoring.dashboard_plot import load_dashboard, panel_queries, plot_dashboard
from dubops.monitoring.prometheus_local import RULES_FILE, LocalPrometheus
from tests.fixtures.served_model import (
    SERVED_DRIFT_WINDOW,
    Champion,
    Server,
    poll,
    start_server,
)

pytestmark = pytest.mark.slow

WINDOW = SERVED_DRIFT_WINDOW  # dubs per drift window of the shared champion
DRIFTED_FPS = 30  # the corpus is made at 25 fps
# The alerts' `for:` in the rules copy Prometheus loads here (see _fast_rules).
FOR = "2s"
ALERT = "DubOpsInputDrift"
T = TypeVar("T")


@dataclass
class Stack:
    """The server, the Prometheus scraping it, and how long each part took."""

    champion: Champion
    server: Server
    prometheus: LocalPrometheus
    root: Path
    started: float
    timings: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="module")
def stack(served_champion, tmp_path_factory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("prometheus_drift")
    tick = time.monotonic()
    champion = served_champion
    registered = time.monotonic() - tick
    # Its own BENTOML_HOME: bentoml wipes the Prometheus multiprocess folder there.
    server = start_server(
        "bento",
        champion,
        root / "server.log",
        "--state-dir",
        str(root / "state"),
        "--set",
        "monitoring.update_every=1",
        "--set",
        f"monitoring.log_dir={root / 'requests'}",
        env={"BENTOML_HOME": str(root / "bentoml_home")},
    )
    prometheus = None
    try:
        tick = time.monotonic()
        server.wait_ready("/readyz", timeout=240)
        served = time.monotonic() - tick
        tick = time.monotonic()
        target = server.url.removeprefix("http://")
        prometheus = LocalPrometheus(target, [_fast_rules(root)]).start()
        poll(
            lambda: prometheus.query('dubops_drift_window_size{server="bento"}'),
            30,
            "Prometheus's first scrape of the server",
        )
        up = time.monotonic() - tick
        timings = {"register champion": registered, "server ready": served, "prometheus": up}
        yield Stack(champion, server, prometheus, root, time.time(), timings)
    finally:
        if prometheus is not None:
            prometheus.stop()
        server.stop()


def _fast_rules(root: Path) -> Path:
    """The rules with every alert's ``for:`` cut to :data:`FOR`, so the test waits seconds,
    not the 15 minutes DubOpsInputDrift really waits; the promtool tests in
    ``monitoring/rules/tests`` check the real durations. Expressions are unchanged."""
    rules = yaml.safe_load(RULES_FILE.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = FOR
    path = root / "dubops.fast.rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


# -- helpers -----------------------------------------------------------------------------


def _corpus_rows(corpus: Path) -> list[dict[str, Any]]:
    """Every clip of the corpus (the reference is built from all of them), in order."""
    import pandas as pd

    from dubops.data.layout import CorpusLayout

    return pd.read_parquet(CorpusLayout(corpus).manifest).to_dict("records")


def _dub_fields(corpus: Path, row: dict[str, Any], video: bytes | None = None) -> dict[str, Any]:
    """The /dub body of a corpus clip, with the fields the reference was described with
    (``row_request``: script, react, clip id, speaker)."""
    video = video if video is not None else (corpus / row["video_path"]).read_bytes()
    prompt = (corpus / row["prompt_audio_path"]).read_bytes()
    return {
        "script": row["script"],
        "react": str(row.get("react") or ""),
        "clip_id": row["clip_id"],
        "speaker_id": str(row.get("speaker") or ""),
        "video_b64": base64.b64encode(video).decode(),
        "prompt_b64": base64.b64encode(prompt).decode(),
    }


def _at_fps(path: Path, fps: float, out: Path) -> bytes:
    """The clip re-encoded at ``fps``, the same length (frames repeated or dropped)."""
    from dubops.video import read_video, write_video

    frames, source_fps = read_video(path)
    count = round(len(frames) * fps / source_fps)
    picks = np.minimum(np.round(np.arange(count) * source_fps / fps).astype(int), len(frames) - 1)
    write_video(out, frames[picks], fps)
    return out.read_bytes()


def _dub(url: str, body: dict[str, Any]) -> None:
    answer = httpx.post(url + "/dub", json=body, timeout=120)
    assert answer.status_code == 200, answer.text


def _value(prometheus: LocalPrometheus, expr: str) -> float | None:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if result else None


def _drift_alerts(prometheus: LocalPrometheus, state: str) -> list[dict[str, Any]]:
    return [
        a for a in prometheus.alerts() if a["labels"]["alertname"] == ALERT and a["state"] == state
    ]


def _scores(prometheus: LocalPrometheus) -> dict[str, float]:
    return {
        r["metric"]["feature"]: float(r["value"][1])
        for r in prometheus.query('dubops_feature_drift_score{server="bento"}')
    }


def _window_scored(prometheus: LocalPrometheus, scrapes_after: float) -> bool:
    """The server's window is full and Prometheus has scraped it since ``scrapes_after``."""
    size = _value(prometheus, 'max(dubops_drift_window_size{server="bento"})')
    newest = _value(prometheus, 'max(timestamp(dubops_feature_drift_score{server="bento"}))')
    return size == WINDOW and newest is not None and newest > scrapes_after


# -- the tests ---------------------------------------------------------------------------


def test_same_distribution_stays_quiet_and_drifted_clips_fire_the_alert(stack, tmp_path):
    corpus = stack.champion.stages.corpus
    prometheus, url = stack.prometheus, stack.server.url
    rows = _corpus_rows(corpus)
    assert _value(prometheus, 'max(dubops_drift_window_size{server="bento"})') == 0

    # A window of the corpus's own clips, spread over its manifest (every split).
    tick = time.monotonic()
    for row in rows[:: len(rows) // WINDOW][:WINDOW]:
        _dub(url, _dub_fields(corpus, row))
    sent = time.time()
    poll(lambda: _window_scored(prometheus, sent), 30, "a full, scored window in Prometheus")
    # Several evaluation cycles past `for:` (1 s each): long enough to have fired.
    time.sleep(8)
    scores = _scores(prometheus)
    assert not _drift_alerts(prometheus, "firing"), scores
    assert max(scores.values()) <= 1, scores
    quiet = time.monotonic() - tick

    # The same kind of clips at 30 fps: the frame rate the reference never saw.
    tick = time.monotonic()
    for row in rows[1 :: len(rows) // WINDOW][:WINDOW]:
        video = _at_fps(corpus / row["video_path"], DRIFTED_FPS, tmp_path / f"{row['clip_id']}.mp4")
        _dub(url, _dub_fields(corpus, row, video))
    firing = poll(lambda: _drift_alerts(prometheus, "firing"), 60, f"{ALERT} firing")
    drifted = time.monotonic() - tick
    # The window is all 30 fps clips now: the two frame-rate distributions do not overlap.
    statistic = 'dubops_feature_drift{server="bento", feature="video_fps"}'
    poll(lambda: _value(prometheus, statistic) == 1.0, 30, "a KS statistic of 1 for video_fps")

    features = {a["labels"]["feature"] for a in firing}
    assert "video_fps" in features, firing
    alert = next(a for a in firing if a["labels"]["feature"] == "video_fps")
    assert alert["labels"]["severity"] == "warning"
    assert alert["labels"]["method"] == "ks"
    assert float(alert["value"]) > 1
    assert "video_fps" in alert["annotations"]["summary"]
    assert _value(prometheus, 'dubops:feature_drift_score:max{feature="video_fps"}') > 1

    # Every dub also reached the request log the drift thread writes.
    from dubops.monitoring.request_log import read_log

    logged = poll(
        lambda: len(read_log(stack.root / "requests")) == 2 * WINDOW, 30, "the request log"
    )
    assert logged
    stack.timings |= {"quiet window": quiet, "drifted window to firing": drifted}
    print(f"TIMINGS | {', '.join(f'{k} {v:.1f} s' for k, v in stack.timings.items())}")
    print(f"SCORES | quiet window {scores}")
    print(f"FIRING | {sorted(features)}")


def test_every_dashboard_query_runs_and_the_dashboard_draws(stack, tmp_path):
    from dubops.monitoring.prometheus_local import PrometheusError

    prometheus = stack.prometheus
    dashboard = load_dashboard()
    failures, empty = [], []
    for query in panel_queries(dashboard):
        try:
            if not prometheus.query(query.expr):
                empty.append(query.title)
        except PrometheusError as exc:
            failures.append(f"{query.title}: {exc}")
    assert not failures
    # Exported from the moment the model loads (the drift panel's data is checked above).
    for title in ("Drift window size", "Model version"):
        assert title not in empty, empty

    out = plot_dashboard(
        prometheus.url,
        dashboard,
        tmp_path / "dashboard.png",
        stack.started - 5,
        time.time(),
        step=1,
    )
    assert out.stat().st_size > 20_000
    if os.environ.get("DUBOPS_DASHBOARD_PNG"):
        target = Path(os.environ["DUBOPS_DASHBOARD_PNG"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, target)
    print(f"DASHBOARD | {out} | panels without data: {empty}")
