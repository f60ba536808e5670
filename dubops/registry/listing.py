"""What ``dubops registry list | show | compare`` print, as plain data (the CLI only renders).

Directions for ``compare`` come from the evaluation's metric table
(:data:`dubops.evaluation.report.METRICS`), the gate's settings and the rule that
every reasoner metric is an accuracy or a rate (higher is better).

The champion history is written before the alias moves (:mod:`dubops.registry.promotion`),
so its last entry may name a version the alias does not point at yet: ``show``
returns it as stored and marks that entry ``pending`` with a note, instead of
taking the history's top for the champion.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dubops.registry.store import (
    CHAMPION,
    HISTORY_TAG,
    alias_version,
    list_versions,
    read_history,
    registry_client,
    resolve_version,
    version_baselines,
    version_metrics,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from dubops.config import DubOpsConfig

_INFO_TAGS = (
    "run_id",
    "pipeline_run_id",
    "data_version",
    "library_version",
    "bundle_hash",
    "git_commit",
    "preset",
    "gate.passed",
    "gate.against",
    "gate.reason",
    "promoted_at",
    "rolled_back_at",
)


def metric_directions(config: DubOpsConfig) -> dict[str, str]:
    """``metric -> "higher" | "lower"`` for every metric DubOps knows the sense of."""
    from dubops.evaluation.report import METRICS

    directions = {key: better for key, _, better in METRICS}
    directions.update({g.metric: g.direction for g in config.registry.gated_metrics})
    return directions


def _direction(metric: str, known: dict[str, str]) -> str:
    if metric in known:
        return known[metric]
    return "higher" if metric.startswith("reasoner_") else ""


def _aliases(client: Any, name: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for alias, version in (client.get_registered_model(name).aliases or {}).items():
        out.setdefault(int(version), []).append(alias)
    return out


def describe_version(version: ModelVersion, aliases: list[str]) -> dict[str, Any]:
    """One version as a JSON-ready dict."""
    tags = version.tags or {}
    created = datetime.fromtimestamp(version.creation_timestamp / 1000, UTC)
    return {
        "version": int(version.version),
        "aliases": sorted(aliases),
        "created": created.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "status": version.status,
        "source": version.source,
        "metrics": version_metrics(version),
        "baselines": version_baselines(version),
        "info": {k: tags[k] for k in _INFO_TAGS if k in tags},
    }


def list_registry(config: DubOpsConfig) -> dict[str, Any]:
    """Every version with its aliases, metrics and gate verdict (oldest first)."""
    client = registry_client(config, read_only=True)
    name = config.registry.model_name
    versions = list_versions(client, name)
    aliases = _aliases(client, name)
    return {
        "model": name,
        "gated_metrics": [g.metric for g in config.registry.gated_metrics],
        "versions": [describe_version(v, aliases.get(int(v.version), [])) for v in versions],
    }


def show_version(config: DubOpsConfig, ref: str) -> dict[str, Any]:
    """One version (number or alias) in full; the champion history when it is the champion."""
    client = registry_client(config, read_only=True)
    name = config.registry.model_name
    version = resolve_version(client, name, ref)
    out = describe_version(version, _aliases(client, name).get(int(version.version), []))
    out["model"] = name
    out["tags"] = {
        k: v
        for k, v in (version.tags or {}).items()
        if not k.startswith(("metric.", "baseline.")) and k != HISTORY_TAG
    }
    champion = alias_version(client, name, CHAMPION)
    if int(version.version) == champion:
        out["champion_history"] = marked_history(read_history(client, name), champion)
    return out


def marked_history(history: list[dict[str, Any]], champion: int | None) -> list[dict[str, Any]]:
    """The history with its last entry marked ``pending`` when the alias is another version.

    That happens when a promotion or rollback stopped between writing the history
    and moving the alias (or the alias was moved outside DubOps): the entry names
    the champion that was meant. Promoting or rolling back again settles it.
    """
    from dubops.registry.promotion import pending_promotion

    out = [dict(h) for h in history]
    if not out or int(out[-1]["version"]) == champion:
        return out
    top, alias = out[-1], "none" if champion is None else f"v{champion}"
    top["pending"] = True
    if pending_promotion(history, champion):
        top["note"] = (
            f"the champion alias is still {alias}: this promotion stopped before it moved "
            f"the alias; promote v{top['version']} again (rollback and promote skip it)"
        )
    else:
        top["note"] = (
            f"the champion alias is {alias}, not this version: a rollback stopped before it "
            "moved the alias (or the alias was moved outside DubOps); "
            "`dubops registry rollback` returns to this version"
        )
    return out


def compare_versions(config: DubOpsConfig, a: str, b: str) -> dict[str, Any]:
    """Metric by metric: A, B, B - A and which is better (``=`` when equal or unknown)."""
    client = registry_client(config, read_only=True)
    name = config.registry.model_name
    va, vb = resolve_version(client, name, a), resolve_version(client, name, b)
    ma, mb = version_metrics(va), version_metrics(vb)
    known = metric_directions(config)
    gated = {g.metric for g in config.registry.gated_metrics}
    rows = []
    for metric in sorted(set(ma) | set(mb), key=lambda m: (m not in gated, m)):
        x, y = ma.get(metric), mb.get(metric)
        direction = _direction(metric, known)
        better = ""
        if x is not None and y is not None and direction:
            if x == y:
                better = "="
            else:
                b_wins = (y > x) if direction == "higher" else (y < x)
                better = f"v{vb.version}" if b_wins else f"v{va.version}"
        rows.append(
            {
                "metric": metric,
                "gated": metric in gated,
                "direction": direction,
                "a": x,
                "b": y,
                "b_minus_a": None if x is None or y is None else y - x,
                "better": better,
            }
        )
    return {"model": name, "a": int(va.version), "b": int(vb.version), "rows": rows}
