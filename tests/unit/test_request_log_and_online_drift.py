"""The rotated request log and the server's background drift window."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dubops.errors import InputError
from dubops.monitoring.online import DriftMonitor
from dubops.monitoring.reference import build_reference
from dubops.monitoring.request_log import RequestLog, read_log, segments


def _record(fps: float = 25.0, value: float = 0.0) -> dict:
    return {"emotion": "joy", "video_fps": fps, "prompt_dbfs": value, "prompt_pitch_hz": np.nan}


def test_log_rotates_keeps_the_newest_and_reads_in_order(tmp_path) -> None:
    log = RequestLog(tmp_path / "log", max_rows=3, keep_files=2)
    for i in range(10):
        log.append(_record(value=float(i)), {"scene": [0.1, 0.2]}, "bento", "dubbing/1")
    log.close()
    files = segments(tmp_path / "log")
    assert len(files) == 3  # two rotated segments kept + the current one
    rows = read_log(tmp_path / "log")
    assert [r["features"]["prompt_dbfs"] for r in rows] == [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert rows[0]["features"]["prompt_pitch_hz"] is None  # NaN stored as null
    assert rows[0]["vectors"] == {"scene": [0.1, 0.2]} and rows[0]["model_version"] == "dubbing/1"
    assert len(read_log(files[-1])) == 1
    assert read_log(tmp_path / "log", model_version="dubbing/2") == []
    with pytest.raises(InputError, match="--log"):
        read_log(tmp_path / "missing")


def test_monitor_publishes_full_windows_and_logs_every_record(tmp_path) -> None:
    rng = np.random.default_rng(0)
    features = [_record(value=float(v)) for v in rng.normal(size=60)]
    reference = build_reference(features, [{} for _ in features], window=5, draws=300)
    updates: list[tuple[dict | None, int]] = []
    log = RequestLog(tmp_path / "log")
    monitor = DriftMonitor(reference, lambda r, n: updates.append((r, n)), log=log)
    for v in rng.normal(size=5):
        monitor.observe(_record(value=float(v)), {})
    monitor.flush()
    assert [n for _, n in updates] == [1, 2, 3, 4, 5]
    assert updates[-1][0] is not None and updates[-1][0]["video_fps"]["score"] == 0.0
    for _ in range(5):
        monitor.observe(_record(fps=30.0), {})
    monitor.flush()
    assert updates[-1][0]["video_fps"]["score"] > 1
    monitor.close()
    assert len(read_log(tmp_path / "log")) == 10


def test_observe_never_blocks_the_request_path(tmp_path) -> None:
    gate = []

    def slow(report, size) -> None:
        gate.append(size)
        time.sleep(0.05)

    features = [_record(value=float(v)) for v in range(40)]
    reference = build_reference(features, [{} for _ in features], window=2, draws=100)
    monitor = DriftMonitor(reference, slow, max_pending=3)
    for _ in range(50):
        monitor.observe(_record(), {})
    # The loop returned while the monitor was still on its first few records, and
    # what did not fit in the queue was dropped, not waited for.
    assert len(gate) < 10 and monitor.dropped > 0
    monitor.close()


def test_gauges_forget_scores_that_left_the_window() -> None:
    from prometheus_client import REGISTRY

    from dubops.monitoring.metrics import serving_metrics

    metrics = serving_metrics()

    def score(feature: str) -> float | None:
        return REGISTRY.get_sample_value(
            "dubops_feature_drift_score", {"server": "unit", "feature": feature, "method": "ks"}
        )

    row = {"method": "ks", "statistic": 0.5, "score": 2.0}
    metrics.set_drift("unit", {"video_fps": row, "prompt_dbfs": row}, 5)
    assert score("video_fps") == 2.0
    metrics.set_drift("unit", {"prompt_dbfs": row}, 5)  # no fps values in this window
    assert np.isnan(score("video_fps")) and score("prompt_dbfs") == 2.0
    metrics.set_drift("unit", None, 1)  # refilling after a restart of the window
    assert np.isnan(score("prompt_dbfs"))
