"""The batch drift report on synthetic clips: no model, the real Evidently and statistics.

The reference is built by :func:`build_reference` from random feature records, as
the evaluate step builds one from a model's; a log of the same distribution must
pass the embedding test at the 1% level, a shifted one must fail it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from dubops.errors import InputError
from dubops.monitoring.batch_report import (
    EVIDENTLY_FILE,
    HTML_FILE,
    SUMMARY_FILE,
    drift_report,
    mmd_permutation_test,
    summary_metrics,
)
from dubops.monitoring.features import CATEGORICAL, EMBEDDING, SCALAR
from dubops.monitoring.reference import build_reference

DIM = 24  # query vector size (the extractors' are larger; the test does not care)


def synthetic_clips(
    count: int, seed: int, shift: float = 0.0
) -> tuple[list[dict[str, Any]], list[dict[str, list[float]]]]:
    """``(features, vectors)`` of random clips; ``shift`` moves scalars and vectors alike.

    The frame rate is constant (as in a real corpus) and the face similarity absent
    (a model without face retrieval), the two cases Evidently needs handled.
    """
    rng = np.random.default_rng(seed)
    features, vectors = [], []
    for _ in range(count):
        record: dict[str, Any] = {c: str(rng.choice(["a", "b", "c"])) for c in CATEGORICAL}
        record |= {s: float(rng.normal(shift, 1.0)) for s in SCALAR}
        record |= {"video_fps": 25.0, "similarity_face": None}
        features.append(record)
        vectors.append({m: (rng.normal(shift, 1.0, DIM)).tolist() for m in EMBEDDING})
    return features, vectors


def log_rows(count: int, seed: int, shift: float = 0.0) -> list[dict[str, Any]]:
    """Request-log rows (``read_log``'s shape), one a minute."""
    features, vectors = synthetic_clips(count, seed, shift)
    return [
        {"ts": 1.75e9 + 60 * i, "server": "test", "model_version": "", "features": f, "vectors": v}
        for i, (f, v) in enumerate(zip(features, vectors, strict=True))
    ]


@pytest.fixture(scope="module")
def reference():
    return build_reference(*synthetic_clips(80, seed=1), window=10, draws=300)


@pytest.fixture(scope="module")
def same(reference, tmp_path_factory):
    out = tmp_path_factory.mktemp("same")
    return drift_report(reference, log_rows(60, seed=2), out), out


@pytest.fixture(scope="module")
def shifted(reference, tmp_path_factory):
    out = tmp_path_factory.mktemp("shifted")
    return drift_report(reference, log_rows(60, seed=3, shift=0.8), out), out


def test_same_distribution_passes_the_embedding_test(same):
    summary, _ = same
    assert set(summary["embedding"]) == set(EMBEDDING)
    for modality, result in summary["embedding"].items():
        assert result["p_value"] >= 0.01, modality
        assert not result["drifted"]
    assert not summary["window"]["drifted"]
    assert not summary["evidently"]["dataset_drift"]
    assert summary["drift_detected"] is False and summary["reasons"] == []


def test_shifted_log_fails_the_embedding_test(shifted):
    summary, _ = shifted
    for modality, result in summary["embedding"].items():
        assert result["p_value"] < 0.01, modality
        assert result["drifted"]
    assert summary["drift_detected"] is True
    assert any(r.startswith("embedding") for r in summary["reasons"])
    # Every scalar moved: Evidently flags the table too.
    assert summary["evidently"]["dataset_drift"]
    assert "video_seconds" in summary["evidently"]["drifted_columns"]
    assert "video_fps" not in summary["evidently"]["drifted_columns"]


def test_evidently_html_and_json_written_atomically(same):
    _, out = same
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [HTML_FILE, SUMMARY_FILE, EVIDENTLY_FILE]
    )  # no temp file left
    html = (out / HTML_FILE).read_text()
    assert html.lstrip().startswith("<!DOCTYPE html>") and "video_seconds" in html
    evidently = json.loads((out / EVIDENTLY_FILE).read_text())
    assert any("ValueDrift" in m["metric_name"] for m in evidently["metrics"])
    written = json.loads((out / SUMMARY_FILE).read_text())
    assert written["rows"] == {"reference": 80, "current": 60}
    assert written["time_span"]["hours"] == pytest.approx(59 / 60, abs=1e-3)


def test_summary_has_every_column_with_its_test(same):
    columns = same[0]["evidently"]["columns"]
    # The face similarity has no value in the reference: skipped, not a crash.
    assert same[0]["evidently"]["skipped"] == {"similarity_face": "no values in the reference"}
    assert set(columns) == (set(SCALAR) - {"similarity_face"}) | set(CATEGORICAL)
    for name, column in columns.items():
        assert column["p_value"], name  # small tables: Evidently's p-value tests
        assert 0.0 <= column["statistic"] <= 1.0
        assert column["kind"] == ("categorical" if name in CATEGORICAL else "numerical")
    scores = same[0]["window"]["scores"]
    assert same[0]["window"]["size"] == 10 and "embedding_scene" in scores


def test_metrics_are_flat_numbers(shifted):
    metrics = summary_metrics(shifted[0])
    assert metrics["drift_detected"] == 1.0
    assert metrics["p_value.embedding_scene"] < 0.01
    assert "p_value.video_seconds" in metrics and "window_score.embedding_text" in metrics
    assert all(isinstance(v, float) for v in metrics.values())


def test_too_short_log_is_refused(reference, tmp_path):
    with pytest.raises(InputError, match=r"--log: 9 logged dubs, .* at least 10"):
        drift_report(reference, log_rows(9, seed=4), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_vectors_of_another_model_are_refused(reference, tmp_path):
    rows = log_rows(12, seed=5)
    for row in rows:
        row["vectors"]["scene"] = row["vectors"]["scene"][:8]
    with pytest.raises(InputError, match="scene vectors have 8 values, the reference's 24"):
        drift_report(reference, rows, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_reference_without_records_is_refused(reference, tmp_path):
    from dataclasses import replace

    with pytest.raises(InputError, match="dubops monitor reference"):
        drift_report(replace(reference, records=[]), log_rows(12, seed=6), tmp_path)


def test_permutation_p_value_bounds():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(40, 4))
    far = rng.normal(5.0, 1.0, size=(30, 4))
    mmd, p_value = mmd_permutation_test(points, far, 1.0, 199, rng)
    assert mmd > 0 and p_value == pytest.approx(1 / 200)  # the floor: nothing as extreme
    _, p_same = mmd_permutation_test(points[:20], points[20:], 1.0, 199, rng)
    assert p_same > 0.05
