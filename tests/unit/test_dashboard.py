"""The Grafana dashboard: well-formed, and every series it (or a rule) reads exists.

Known names come from the code, not a list kept by hand: the metrics
:func:`serving_metrics` registers (with the ``_total`` / ``_bucket`` suffixes the
exposition adds) and the recording rules of ``monitoring/rules``. A renamed metric
therefore fails here, not on a blank panel in production.
"""

from __future__ import annotations

import re

import pytest
import yaml

from dubops.monitoring.dashboard_plot import DASHBOARD_FILE, load_dashboard, panel_queries
from dubops.monitoring.prometheus_local import RULES_FILE

# Words of PromQL that look like metric names.
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def metric_names(expr: str) -> set[str]:
    """The metric and recording-rule names a PromQL expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)\s*(\()?", text):
        if match.group(2) is None and match.group(1).lower() not in KEYWORDS:
            names.add(match.group(1))
    return names


def exported_metrics() -> set[str]:
    """Every sample name the servers' ``/metrics`` can show."""
    from dubops.monitoring.metrics import serving_metrics

    metrics = serving_metrics()
    names = set()
    for metric in vars(metrics).values():
        if not hasattr(metric, "describe"):  # bookkeeping beside the metric objects
            continue
        for family in metric.describe():
            names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


def recording_rules() -> dict[str, list[str]]:
    """Recorded name -> the expressions recording it."""
    recorded: dict[str, list[str]] = {}
    for group in yaml.safe_load(RULES_FILE.read_text())["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                recorded.setdefault(rule["record"], []).append(rule["expr"])
    return recorded


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return load_dashboard(DASHBOARD_FILE)


def _panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p.get("type") != "row"]


def test_metric_names_parser():
    expr = (
        'histogram_quantile(0.99, sum by (server, le) (rate(dubops_x_bucket{a="b:c"}'
        "[$__rate_interval]))) > on (stage) group_left dubops:y:z * 1e3"
    )
    assert metric_names(expr) == {"dubops_x_bucket", "dubops:y:z"}


def test_dashboard_is_grafana_json_with_a_prometheus_datasource(dashboard):
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    source = variables["datasource"]
    assert source["type"] == "datasource" and source["query"] == "prometheus"
    for panel in _panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_panel_ids_are_unique_and_every_panel_has_queries(dashboard):
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in _panels(dashboard):
        assert panel.get("targets"), f"{panel['title']}: no targets"
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"{panel['title']}: an empty expr"


def test_panels_read_only_exported_metrics_and_recorded_rules(dashboard):
    known = exported_metrics() | set(recording_rules())
    for query in panel_queries(dashboard):
        unknown = metric_names(query.expr) - known
        assert not unknown, f"{query.title}: {query.expr} reads unknown {unknown}"


def test_rules_read_only_exported_metrics():
    known = exported_metrics() | set(recording_rules()) | {"up"}
    for group in yaml.safe_load(RULES_FILE.read_text())["groups"]:
        for rule in group["rules"]:
            unknown = metric_names(rule["expr"]) - known
            assert not unknown, f"{rule.get('record') or rule['alert']} reads unknown {unknown}"


def test_dashboard_draws_the_recorded_series(dashboard):
    """Panels read the recording rules rather than repeat their expressions."""
    used = set().union(*(metric_names(q.expr) for q in panel_queries(dashboard)))
    for name in (
        "dubops:requests:rate5m",
        "dubops:request_error_ratio:rate5m",
        "dubops:stage_seconds:p50_5m",
        "dubops:stage_seconds:p99_5m",
        "dubops:real_time_factor:p50_5m",
        "dubops:errors:rate5m",
        "dubops:reasoner_fallback_ratio:rate10m",
        "dubops:feature_drift_score:max",
        "dubops:jobs:rate5m",
    ):
        assert name in used, name
    for query in panel_queries(dashboard):
        for expressions in recording_rules().values():
            for recorded in expressions:
                assert " ".join(recorded.split()) not in " ".join(query.expr.split())


def test_drift_panel_marks_the_threshold_at_one(dashboard):
    panel = next(p for p in _panels(dashboard) if "dubops:feature_drift_score:max" in str(p))
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["custom"]["thresholdsStyle"]["mode"] != "off"
    assert 1 in [s["value"] for s in defaults["thresholds"]["steps"]]


def test_the_model_version_panel_reads_model_info(dashboard):
    assert any("dubops_model_info" in q.expr for q in panel_queries(dashboard))
