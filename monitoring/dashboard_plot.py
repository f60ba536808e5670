"""The Grafana dashboard drawn with matplotlib: its panels' queries run against a Prometheus.

Grafana is not available everywhere the dashboard needs checking (CI, a laptop), so
:func:`plot_dashboard` stands in for a screenshot: it expands each panel's
queries the way Grafana would (:func:`panel_queries`), runs them over a time range
with ``query_range`` and draws one line plot per panel, with the panel's threshold
lines, into a PNG. :func:`panel_queries` is also what a test runs against a real
Prometheus to show every panel's query is valid there.

The figure is a bare :class:`matplotlib.figure.Figure` rendered by the Agg canvas:
no pyplot, so no global backend is switched and nothing is left open.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dubops.monitoring.prometheus_local import query_range

DASHBOARD_FILE = Path(__file__).parent / "dashboards" / "dubops.json"
# What Grafana puts for its built-in interval variables (a few scrapes at a 15 s interval).
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_MAX_LEGEND = 8  # series named in a panel's legend (the rest drawn unnamed)


@dataclass(frozen=True)
class PanelQuery:
    """One target of a panel, its expression expanded."""

    panel_id: int
    title: str
    expr: str
    legend: str


def load_dashboard(path: str | Path = DASHBOARD_FILE) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def panel_queries(
    dashboard: Mapping[str, Any], variables: Mapping[str, str] | None = None
) -> list[PanelQuery]:
    """Every panel's targets (rows' nested panels included), variables expanded.

    A template variable becomes ``variables[name]``, else its ``allValue`` (``.*``
    for the ``server`` choice), else ``.*``; Grafana's ``$__rate_interval`` and
    friends become :data:`BUILTINS`.
    """
    values = dict(BUILTINS)
    for var in dashboard.get("templating", {}).get("list", []):
        values[var["name"]] = var.get("allValue") or ".*"
    values |= dict(variables or {})
    found = []
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            found.append(
                PanelQuery(
                    panel_id=int(panel["id"]),
                    title=str(panel.get("title", "")),
                    expr=expand(expr, values),
                    legend=str(target.get("legendFormat", "")),
                )
            )
    return found


def expand(expr: str, values: Mapping[str, str]) -> str:
    """``$name``, ``${name}`` and ``[[name]]`` replaced by ``values`` (unknown names kept)."""

    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(replace, expr)


def legend(template: str, labels: Mapping[str, str]) -> str:
    """A series' name as Grafana's ``legendFormat`` writes it (the labels when empty)."""
    if not template or template == "__auto":
        return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), template)


def plot_dashboard(
    url: str,
    dashboard: Mapping[str, Any],
    out: str | Path,
    start: float,
    end: float,
    step: float = 5.0,
    columns: int = 3,
) -> Path:
    """Draw every panel of ``dashboard`` from the Prometheus at ``url`` into a PNG.

    Args:
        url: the Prometheus base URL.
        dashboard: the dashboard JSON (see :func:`load_dashboard`).
        out: the PNG to write (its folder is created).
        start, end: the time range, Unix seconds.
        step: seconds between points.
        columns: panels per row of the grid.

    Returns:
        The PNG's path.
    """
    from matplotlib.figure import Figure

    queries = panel_queries(dashboard)
    panels = [p for p in _panels(dashboard) if p.get("targets")]
    rows = max(1, -(-len(panels) // columns))
    figure = Figure(figsize=(6 * columns, 3.6 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, panel in zip(axes, panels, strict=False):
        mine = [q for q in queries if q.panel_id == panel["id"]]
        _draw_panel(ax, panel, mine, url, start, end, step)
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    span = f"{_clock(start)} - {_clock(end)}"
    figure.suptitle(f"{dashboard.get('title', 'dashboard')}  ({span})", fontsize=14)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80)
    return out


def _draw_panel(
    ax: Any,
    panel: Mapping[str, Any],
    queries: list[PanelQuery],
    url: str,
    start: float,
    end: float,
    step: float,
) -> None:
    import matplotlib.dates as mdates

    lines = []
    for query in queries:
        for series in query_range(url, query.expr, start, end, step):
            times = [datetime.fromtimestamp(float(t)) for t, _ in series["values"]]
            values = [float(v) for _, v in series["values"]]
            lines.append((legend(query.legend, series["metric"]), times, values))
    # The legend names the series that reach highest (a firing drift score, the slowest
    # stage); the rest are drawn unnamed.
    lines.sort(key=lambda line: -max(line[2]))
    for rank, (name, times, values) in enumerate(lines):
        ax.plot(
            times,
            values,
            label=name if rank < _MAX_LEGEND else None,
            linewidth=1.2,
            marker="o",
            markersize=2,  # a series of one point still shows
        )
    for value in _thresholds(panel):
        ax.axhline(value, color="red", linestyle="--", linewidth=1)
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    scale = defaults.get("custom", {}).get("scaleDistribution", {})
    if scale.get("type") == "log" and lines:
        ax.set_yscale("log", base=scale.get("log", 10))
    ax.set_title(str(panel.get("title", "")), fontsize=10)
    ax.set_xlim(datetime.fromtimestamp(start), datetime.fromtimestamp(end))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    ax.tick_params(labelsize=7)
    unit = defaults.get("unit")
    if unit and unit not in ("none", "short"):
        ax.set_ylabel(unit, fontsize=8)
    if lines:
        ax.legend(fontsize=6, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def _thresholds(panel: Mapping[str, Any]) -> list[float]:
    """The threshold values a panel draws as lines (none unless its style says so)."""
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    style = defaults.get("custom", {}).get("thresholdsStyle", {}).get("mode", "off")
    if style == "off":
        return []
    steps = defaults.get("thresholds", {}).get("steps", [])
    return [float(s["value"]) for s in steps if s.get("value") is not None]


def _panels(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Top-level panels and those folded inside rows."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def _clock(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")
