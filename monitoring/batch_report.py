"""The batch drift report: a period of the request log against a version's drift reference.

Three views of one question, each answering what the others cannot:

* **Evidently's** ``DataDriftPreset`` over the scalar and categorical features,
  reference clips (the profile's ``records``) against the logged dubs: a per-column
  test (Kolmogorov-Smirnov, chi-square, Z-test for small tables; Wasserstein and
  Jensen-Shannon distances past 1000 rows, Evidently's own rule) and an HTML page a
  person can read. A column is "drifted" by Evidently's per-column test; the table
  drifts when at least ``drift_share`` of the columns do (Evidently's dataset rule,
  which keeps one column's 5% false alarm from flagging the whole report).
* **Embeddings**, which Evidently's tables cannot hold: per query modality, the MMD
  between the reference's projected vectors and the logged vectors projected on the
  same axes, with a permutation p-value (Gretton et al. 2012, "A kernel two-sample
  test", section 4). Modalities share ``alpha`` (Bonferroni).
* **The latest window**, scored with the reference's own calibrated thresholds
  (:meth:`ReferenceProfile.compare`), the very numbers the servers' online drift
  gauge shows, so the report says what the dashboard said.

Drift is found when any of the three says so. Nothing here reads the registry or
MLflow: ``dubops monitor drift`` fetches the reference and logs the result.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from dubops.errors import InputError
from dubops.monitoring import drift
from dubops.monitoring.features import CATEGORICAL, NONE, SCALAR, embedding_rows
from dubops.monitoring.reference import ReferenceProfile

HTML_FILE = "report.html"
SUMMARY_FILE = "report.json"
EVIDENTLY_FILE = "evidently.json"  # Evidently's own export: every metric and test result
PERMUTATIONS = 500
MAX_EMBEDDING_ROWS = 1000  # per side: the permutation test is quadratic in the rows
DRIFT_SHARE = 0.5  # Evidently's default share of drifted columns for dataset drift


def drift_report(
    reference: ReferenceProfile,
    rows: list[dict[str, Any]],
    out_dir: str | Path,
    *,
    min_rows: int | None = None,
    alpha: float | None = None,
    drift_share: float = DRIFT_SHARE,
    permutations: int = PERMUTATIONS,
    max_embedding_rows: int = MAX_EMBEDDING_ROWS,
    seed: int = 0,
    about: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``report.html``, ``evidently.json`` and ``report.json`` and return the summary.

    Args:
        reference: the model version's drift reference (with its clip ``records``).
        rows: request-log rows ``{ts, features, vectors, ...}``, oldest first
            (:func:`dubops.monitoring.request_log.read_log`).
        out_dir: the report's folder (created; the files are written atomically).
        min_rows: the fewest rows worth a report (default: the reference's window,
            the size its thresholds were calibrated for).
        alpha: family-wise level of the embedding tests (default: the reference's).
        drift_share: Evidently's share of drifted columns that means dataset drift.
        permutations: permutations per embedding test (the p-value's floor is
            ``1 / (permutations + 1)``).
        max_embedding_rows: rows per side in the embedding test (a seeded sample).
        seed: seeds the embedding tests' sampling and permutations.
        about: what was compared (model, log, period), kept in the summary as ``source``.

    Returns:
        The summary (also ``report.json``): ``drift_detected`` and its ``reasons``;
        ``rows`` and ``time_span``; ``evidently`` (per column: method, statistic,
        threshold, drifted; the drifted columns and their share); ``embedding`` (per
        modality: MMD and p-value); ``window`` (the latest window's scores).

    Raises:
        InputError: too few rows; a reference without clip records; logged vectors of
            another size than the reference's (another model's log).
    """
    needed = reference.window if min_rows is None else min_rows
    if len(rows) < needed:
        raise InputError(
            f"--log: {len(rows)} logged dubs, the report needs at least {needed} (the "
            "reference's drift window); wait for more requests, or widen the period (--since)"
        )
    if not reference.records:
        raise InputError(
            "the drift reference has no clip records (built before they were kept); rebuild "
            "it with `dubops monitor reference` and pass it with --reference"
        )
    features = [r["features"] for r in rows]
    vectors = [r.get("vectors") or {} for r in rows]
    alpha = reference.alpha if alpha is None else alpha
    # The embeddings first: another model's vectors fail here, before any file is written.
    embedding = embedding_tests(
        reference, vectors, alpha, permutations, max_embedding_rows, np.random.default_rng(seed)
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    evidently = evidently_drift(reference.records, features, out, drift_share)
    window = window_scores(reference, rows)
    reasons = []
    if evidently["dataset_drift"]:
        reasons.append(
            f"Evidently: {evidently['number_drifted']} of {len(evidently['columns'])} columns "
            f"drifted (share {evidently['share_drifted']:.2f} >= {drift_share})"
        )
    reasons += [
        f"embedding {m}: MMD p-value {e['p_value']:.4f} < {e['level']:.4f}"
        for m, e in embedding.items()
        if e["drifted"]
    ]
    if window["drifted"]:
        reasons.append(
            f"latest {window['size']} dubs over the reference's thresholds: "
            + ", ".join(window["drifted"])
        )
    summary = {
        "source": about or {},
        "drift_detected": bool(reasons),
        "reasons": reasons,
        "alpha": alpha,
        "rows": {"reference": len(reference.records), "current": len(rows)},
        "time_span": time_span(rows),
        "evidently": evidently,
        "embedding": embedding,
        "window": window,
        "files": {
            "html": str(out / HTML_FILE),
            "summary": str(out / SUMMARY_FILE),
            "evidently": str(out / EVIDENTLY_FILE),
        },
    }
    from dubops.fileio import write_json

    write_json(out / SUMMARY_FILE, summary)
    return summary


def summary_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The summary's numbers, flat, for a tracker: drift share and count, each column's
    p-value (or distance), each embedding's p-value and MMD, each window score."""
    evidently = summary["evidently"]
    metrics = {
        "drift_detected": float(summary["drift_detected"]),
        "drift_share": evidently["share_drifted"],
        "drifted_columns": float(evidently["number_drifted"]),
        "rows_current": float(summary["rows"]["current"]),
        "rows_reference": float(summary["rows"]["reference"]),
    }
    for column, c in evidently["columns"].items():
        metrics[f"{'p_value' if c['p_value'] else 'distance'}.{column}"] = c["statistic"]
    for modality, e in summary["embedding"].items():
        metrics[f"p_value.embedding_{modality}"] = e["p_value"]
        metrics[f"mmd.embedding_{modality}"] = e["mmd"]
    for feature, s in summary["window"]["scores"].items():
        metrics[f"window_score.{feature}"] = s["score"]
    return metrics


def evidently_drift(
    reference: list[dict[str, Any]],
    current: list[dict[str, Any]],
    out: Path,
    drift_share: float = DRIFT_SHARE,
) -> dict[str, Any]:
    """Evidently's data-drift preset over the feature tables; its HTML and JSON in ``out``.

    A scalar with no value on one side (no retrieval, so no similarity) cannot be
    tested: it is listed under ``skipped`` instead (Evidently refuses empty columns).
    """
    from dubops.fileio import atomic_path

    ref, cur = _table(reference), _table(current)
    skipped = {
        name: "no values in the " + ("reference" if ref[name].isna().all() else "log")
        for name in SCALAR
        if ref[name].isna().all() or cur[name].isna().all()
    }
    numerical = [n for n in SCALAR if n not in skipped]
    categorical = list(CATEGORICAL)
    with warnings.catch_warnings():
        # Evidently's summaries divide by zero on constant columns (e.g. the frame rate),
        # and its import trips its dependencies' deprecation notices: none are ours to fix.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        snapshot = _run_evidently(ref, cur, numerical, categorical, drift_share)
        with atomic_path(out / HTML_FILE) as tmp:
            snapshot.save_html(str(tmp))
    with atomic_path(out / EVIDENTLY_FILE) as tmp:
        tmp.write_text(snapshot.json())
    result = _read_snapshot(snapshot.dict(), set(numerical))
    drifted = [name for name, c in result["columns"].items() if c["drifted"]]
    share = len(drifted) / len(result["columns"]) if result["columns"] else 0.0
    return {
        **result,
        "drifted_columns": drifted,
        "number_drifted": len(drifted),
        "share_drifted": round(share, 4),
        "drift_share": drift_share,
        "dataset_drift": bool(result["columns"]) and share >= drift_share,
        "skipped": skipped,
    }


def _run_evidently(
    ref: Any, cur: Any, numerical: list[str], categorical: list[str], drift_share: float
) -> Any:
    """Evidently's snapshot, with the column types stated (not inferred from the values)
    and its usage telemetry off: nothing phones home."""
    os.environ.setdefault("DO_NOT_TRACK", "1")  # evidently.telemetry's switch (any value)
    os.environ["EVIDENTLY_DISABLE_TELEMETRY"] = "1"  # its legacy UI's switch
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    columns = numerical + categorical
    report = Report([DataDriftPreset(drift_share=drift_share)], include_tests=True)
    return report.run(
        Dataset.from_pandas(cur[columns], data_definition=definition),
        Dataset.from_pandas(ref[columns], data_definition=definition),
    )


def _table(records: list[dict[str, Any]]) -> Any:
    """Feature records as a frame: scalars as floats (missing: NaN), categories as text."""
    import pandas as pd

    data: dict[str, Any] = {
        name: [str(r.get(name) or NONE) for r in records] for name in CATEGORICAL
    }
    for name in SCALAR:
        data[name] = pd.to_numeric(pd.Series([r.get(name) for r in records]), errors="coerce")
    return pd.DataFrame(data)


def _read_snapshot(snapshot: dict[str, Any], numerical: set[str]) -> dict[str, Any]:
    """Per column: Evidently's method, statistic, threshold and test verdict.

    The ``ValueDrift`` metrics hold the statistic (a p-value when the method's name
    says ``p_value``, else a distance); their tests (``include_tests``) say FAIL
    when Evidently finds the column drifted.
    """
    failed = {
        t["metric_config"]["metric_id"]
        for t in snapshot.get("tests", [])
        if t.get("status") == "FAIL"
    }
    columns: dict[str, dict[str, Any]] = {}
    for metric in snapshot.get("metrics", []):
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith(":ValueDrift"):
            continue
        method = str(config.get("method"))
        value = float(metric["value"])
        columns[config["column"]] = {
            "kind": "numerical" if config["column"] in numerical else "categorical",
            "method": method,
            "p_value": "p_value" in method,
            "statistic": round(value, 6),
            "threshold": config.get("threshold"),
            "drifted": metric["id"] in failed,
        }
    return {"columns": columns}


def embedding_tests(
    reference: ReferenceProfile,
    vectors: list[dict[str, Any]],
    alpha: float,
    permutations: int = PERMUTATIONS,
    max_rows: int = MAX_EMBEDDING_ROWS,
    rng: np.random.Generator | None = None,
) -> dict[str, dict[str, Any]]:
    """Per modality the log has vectors of: MMD, permutation p-value and verdict.

    Raises:
        InputError: logged vectors of another size than the reference's axes.
    """
    rng = rng or np.random.default_rng(0)
    found = {m: embedding_rows(vectors, m) for m in reference.embedding}
    found = {m: rows for m, rows in found.items() if rows is not None}
    level = alpha / max(len(found), 1)
    out = {}
    for modality, rows in found.items():
        ref = reference.embedding[modality]
        if rows.shape[1] != len(ref.mean):
            raise InputError(
                f"--log: {modality} vectors have {rows.shape[1]} values, the reference's "
                f"{len(ref.mean)}: the log holds another model's dubs; filter it by version "
                "(drop --all-versions) or give that model's reference"
            )
        ref_points = _sample(np.asarray(ref.projected), max_rows, rng)
        log_points = _sample(ref.project(rows), max_rows, rng)
        mmd, p_value = mmd_permutation_test(
            ref_points, log_points, ref.bandwidth, permutations, rng
        )
        out[modality] = {
            "method": "MMD permutation",
            "mmd": round(mmd, 6),
            "p_value": round(p_value, 6),
            "level": level,
            "drifted": p_value < level,
            "permutations": permutations,
            "reference_rows": len(ref_points),
            "current_rows": len(log_points),
        }
    return out


def mmd_permutation_test(
    reference: np.ndarray,
    current: np.ndarray,
    bandwidth: float,
    permutations: int,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """``(MMD², p-value)``: how often relabelling the pooled points gives an MMD as large.

    MMD² is ``w @ K @ w`` with ``w`` = ``1/n`` on one side and ``-1/m`` on the other
    (the biased statistic of :func:`drift.mmd`); every permutation shuffles ``w``
    over one kernel matrix, all at once as one matrix product.
    """
    pooled = np.vstack([reference, current])  # (n + m, dims)
    kernel = drift.gaussian_kernel(pooled, pooled, bandwidth)  # (n + m, n + m)
    n, m = len(reference), len(current)
    weights = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    observed = float(weights @ kernel @ weights)
    shuffled = np.stack([rng.permutation(weights) for _ in range(permutations)], axis=1)
    null = np.einsum("ip,ip->p", shuffled, kernel @ shuffled)  # (permutations,)
    # Ties count against drift; the +1s keep the observed labelling among the draws.
    exceed = int(np.sum(null >= observed - 1e-12))
    return max(observed, 0.0), (exceed + 1) / (permutations + 1)


def _sample(points: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    if len(points) <= limit:
        return points
    return points[np.sort(rng.choice(len(points), limit, replace=False))]


def window_scores(reference: ReferenceProfile, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The reference's calibrated comparison of the latest ``window`` rows (score > 1: drift)."""
    latest = rows[-reference.window :]
    scores = reference.compare(
        [r["features"] for r in latest], [r.get("vectors") or {} for r in latest]
    )
    return {
        "size": len(latest),
        "since": _iso(latest[0].get("ts")) if latest else None,
        "scores": scores,
        "drifted": sorted(name for name, s in scores.items() if s["score"] > 1),
    }


def time_span(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """First and last logged time (UTC) and the hours between."""
    stamps = [float(r["ts"]) for r in rows if r.get("ts") is not None]
    if not stamps:
        return {"first": None, "last": None, "hours": None}
    first, last = min(stamps), max(stamps)
    return {"first": _iso(first), "last": _iso(last), "hours": round((last - first) / 3600, 3)}


def _iso(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(ts)))
