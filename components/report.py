"""The evaluate step's HTML artifact: the model beside its baselines, one self-contained page.

(The full evaluation report, with mel plots and audio players, stays in the step's
store folder and the MLflow run; a KFP HTML artifact is one file.)
"""

from __future__ import annotations

import html


def _direction() -> dict[str, tuple[str, str]]:
    from dubops.evaluation.report import METRICS

    return {key: (label, better) for key, label, better in METRICS}


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _table(title: str, rows: list[tuple[str, str, list[float | None]]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["metric", "better", *columns])
    body = "".join(
        "<tr>"
        + f"<td>{html.escape(label)}</td><td>{better}</td>"
        + "".join(f"<td>{_cell(v)}</td>" for v in values)
        + "</tr>"
        for label, better, values in rows
    )
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"


def evaluation_html(
    metrics: dict[str, float],
    baselines: dict[str, dict[str, float]],
    clips: int,
    splits: list[str],
) -> str:
    """Speech metrics (model, mean-mel, shuffled) and reasoning metrics (model, majority)."""
    labels = _direction()
    speech_systems = [name for name in baselines if name != "majority"]
    speech = [
        (
            labels[k][0],
            labels[k][1],
            [metrics.get(k)] + [baselines[s].get(k) for s in speech_systems],
        )
        for k in labels
        if k in metrics
    ]
    majority = baselines.get("majority", {})
    reasoning = [
        (k.removeprefix("reasoner_").replace("_", " "), "higher", [v, majority.get(k)])
        for k, v in metrics.items()
        if k.startswith("reasoner_")
    ]
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>DubOps evaluation</title>"
        f"<style>{style}</style></head><body><h1>DubOps evaluation</h1>"
        f"<p>{clips} clips of {html.escape(', '.join(splits))}</p>"
        + _table("Speech (overall)", speech, ["model", *speech_systems])
        + _table("Reasoning (overall)", reasoning, ["model", "majority"])
        + "</body></html>\n"
    )
