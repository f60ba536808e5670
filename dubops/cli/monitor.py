"""``dubops monitor drift|reference``: batch drift reports over the request log, references.

``drift`` compares a period of a server's request log with the drift reference of
the model version that served it (the one its bundle carries), writes Evidently's
HTML page and our summary, logs both to MLflow in ``<experiment>-monitoring`` and
tags the model version with that run. The report is
:func:`dubops.monitoring.batch_report.drift_report`; this module only finds the
reference and the log, and records the result.

The reference of a registered version is found without loading the model
(:mod:`dubops.registry.drift_reference`); the MLflow run is
:mod:`dubops.monitoring.drift_tracking`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dubops.cli.common import off_switch, print_json, user_errors
from dubops.cli.options import config_options

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig

app = typer.Typer(
    help="Watch what a served model is asked: drift reports over its request log.",
    no_args_is_help=True,
)

DRIFT_EXIT = 3  # --fail-on-drift: drift found (2 is a user error, 1 a crash)

ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="models:/dubbing@champion (default: serving.model), models:/dubbing/3, a bundle "
        "folder or a drift_reference.json.",
    ),
]


@app.callback()
def _quiet_downloads() -> None:
    # MLflow's per-file download bars would bury the table. No docstring: it would
    # replace the group's help.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@app.command("drift")
@config_options(json=True)
def drift_command(
    model: ModelOption = None,
    log: Annotated[
        Path | None,
        typer.Option(
            "--log",
            "-l",
            help="Request log folder or .sqlite file (default: monitoring.log_dir, else "
            "<serving.state_dir>/requests).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Report folder (default: outputs/monitoring/<UTC time>)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only dubs logged since: hours ago (24) or an ISO time (2025-06-01T00:00Z; "
            "local time without an offset).",
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", min=1, help="Compare at most the newest this many logged dubs."),
    ] = 20_000,
    reference: Annotated[
        Path | None,
        typer.Option(
            "--reference",
            help="A drift_reference.json to use instead of the bundle's (a version registered "
            "before references existed: make one with `dubops monitor reference`).",
        ),
    ] = None,
    all_versions: Annotated[
        bool,
        typer.Option(
            "--all-versions",
            help="Compare every logged dub (default: only those the registered version served).",
        ),
    ] = False,
    track: Annotated[
        bool, off_switch("--no-track", "Do not log the report to MLflow or tag the version.")
    ] = True,
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help=f"Exit {DRIFT_EXIT} when drift is found.")
    ] = False,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """The request log against the drift reference of the model that served it.

    Evidently's per-column tests over the scalar and categorical features, an
    MMD permutation test per query embedding, and the latest window scored with
    the reference's calibrated thresholds (what the servers' drift gauge shows).
    Writes report.html (Evidently's page), report.json (the summary) and
    evidently.json (its metrics and tests); logs them to MLflow (experiment
    <tracking.experiment>-monitoring) and tags the model version with
    dubops.last_drift_run. Exits 0 whether or not drift is found; with
    --fail-on-drift, 3 when it is.

    Examples:

      dubops monitor drift -m models:/dubbing@champion -l outputs/serving/requests

      dubops monitor drift --since 24 --fail-on-drift    # a daily cron job

      dubops monitor drift -m bundle/ -l requests.sqlite --no-track
    """
    with user_errors():
        from dubops.cli import checks
        from dubops.monitoring.batch_report import drift_report
        from dubops.monitoring.drift_tracking import log_drift_run
        from dubops.monitoring.request_log import read_log
        from dubops.registry.drift_reference import find_reference

        uri = model or config.serving.model
        log = log or _default_log(config)
        out = checks.output_dir(out or _default_out(), "--out")
        if reference is not None:
            checks.input_file(reference, "--reference", "drift reference")
        source = find_reference(config, uri, reference)
        since_ts = _since(since)
        only = None if all_versions else source.served_as or None
        rows = read_log(log, since_ts, only, limit=limit)
        if only and len(rows) < source.reference.window:
            _explain_other_versions(log, since_ts, only, len(rows), source.reference.window)
        about = {"model": uri, "model_version": source.served_as, "log": str(log), "since": since}
        summary = drift_report(source.reference, rows, out, about=about)
        if track:
            summary["mlflow_run"] = log_drift_run(config, source, summary)
    if as_json:
        print_json(summary)
    else:
        _print_summary(summary)
    if fail_on_drift and summary["drift_detected"]:
        raise typer.Exit(DRIFT_EXIT)


@app.command("reference")
@config_options(json=True)
def reference_command(
    data: Annotated[Path, typer.Option("--data", "-d", help="The corpus folder.")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="models:/dubbing/3 (default: serving.model), a bundle or a graph run folder.",
        ),
    ] = None,
    split: Annotated[
        list[str] | None,
        typer.Option(
            "--split", "--splits", help="Splits (repeatable; default: monitoring.reference_splits)."
        ),
    ] = None,
    max_clips: Annotated[
        int | None,
        typer.Option(min=1, help="Clips at most (default: monitoring.reference_max_clips)."),
    ] = None,
    library: Annotated[
        Path | None,
        typer.Option("--library", help="Footage library (default: the one the model records)."),
    ] = None,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="The reference file to write."),
    ] = Path("outputs/monitoring/drift_reference.json"),
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Build a model's drift reference from corpus clips (no speech is generated).

    For a version registered before bundles carried a reference, or to watch
    against other data. Each clip goes through the served path up to the
    footage query; the thresholds are calibrated for monitoring.window dubs.

    Examples:

      dubops monitor reference -m models:/dubbing/3 -d data/tiny -o ref3.json

      dubops monitor drift -m models:/dubbing/3 --reference ref3.json -l requests/
    """
    from dubops.cli.common import progress_bar

    watch = config.monitoring
    with user_errors():
        from dubops.cli import checks
        from dubops.inference.corpus import describe_corpus
        from dubops.inference.loading import load_pipeline
        from dubops.monitoring.reference import build_reference

        checks.corpus_dir(data)
        checks.output_file(out, "--out", ".json")
        uri = model or config.serving.model
        splits = split or list(watch.reference_splits)
        clips = _enough_clips(data, splits, max_clips or watch.reference_max_clips, watch.window)
        pipeline, info = load_pipeline(config, uri, library)
        with pipeline, progress_bar("describing clips", quiet=as_json) as update:
            features, vectors = describe_corpus(
                pipeline,
                data,
                splits,
                clips,
                batch_size=config.pipeline.evaluate.reason_batch_size,
                progress=update,
            )
        profile = build_reference(
            features,
            vectors,
            window=watch.window,
            alpha=watch.alpha,
            draws=watch.draws,
            embedding_dims=watch.embedding_dims,
        )
        profile.splits = splits
        if "version" in info:
            profile.model_version = f"{info['name']}/{info['version']}"
        profile.save(out)
    result = {"reference": str(out), "clips": profile.clips, "window": profile.window}
    if as_json:
        print_json(result)
        return
    console = _console()
    console.print(f"[bold green]reference[/] {out} ({profile.clips} clips, window {watch.window})")
    console.print(f"use it: dubops monitor drift --model {uri} --reference {out} --log LOG")


def _enough_clips(data: Path, splits: list[str], limit: int | None, window: int) -> int:
    """The clips the reference will hold; too few to calibrate a window fail before the
    model loads (the reference needs two windows' worth)."""
    from dubops.data.datasets import load_manifest
    from dubops.errors import InputError

    clips = len(load_manifest(data, splits))
    clips = min(clips, limit) if limit else clips
    if clips < 2 * window:
        raise InputError(
            f"--data {data}: {clips} clips in {splits} (--max-clips {limit}), a reference for "
            f"windows of {window} dubs needs {2 * window}; add --split values, raise "
            "--max-clips, or lower the window with --set monitoring.window=N"
        )
    return clips


def _explain_other_versions(
    log: Path, since: float | None, version: str, found: int, needed: int
) -> None:
    """Too few dubs of this version, but the log holds others: say which, and the flag."""
    from dubops.errors import InputError
    from dubops.monitoring.request_log import read_log

    others = sorted({r["model_version"] or "-" for r in read_log(log, since)} - {version})
    if others:
        raise InputError(
            f"--log {log}: {found} dubs of {version}, the report needs {needed}; the log also "
            f"holds dubs of {others}: name that version with --model, or pass --all-versions"
        )


def _print_summary(summary: dict[str, Any]) -> None:
    """The table (feature, test, statistic, drifted, latest window score) and the paths."""
    from rich import box
    from rich.table import Table

    rows, span, window = summary["rows"], summary["time_span"], summary["window"]
    table = Table(
        title=f"{rows['current']} logged dubs ({span['first']} .. {span['last']}) against "
        f"{rows['reference']} reference clips",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in ("feature", "test", "p-value / stat", "drifted", f"last {window['size']}"):
        table.add_column(column, no_wrap=True)
    scores = window["scores"]
    flag = {True: "[bold red]yes[/]", False: "no"}
    for name, c in summary["evidently"]["columns"].items():
        table.add_row(
            name, c["method"], f"{c['statistic']:.4g}", flag[c["drifted"]], _score(scores.get(name))
        )
    for modality, e in summary["embedding"].items():
        key = f"embedding_{modality}"
        table.add_row(
            key, e["method"], f"{e['p_value']:.4g}", flag[e["drifted"]], _score(scores.get(key))
        )
    for name, reason in summary["evidently"]["skipped"].items():
        table.add_row(name, "skipped", reason, "–", _score(scores.get(name)))
    console = _console()
    console.print(table)
    if summary["drift_detected"]:
        console.print("[bold red]DRIFT FOUND[/]")
        for reason in summary["reasons"]:
            console.print(f"  - {reason}")
    else:
        console.print("[bold green]no drift found[/]")
    for label, path in summary["files"].items():
        console.print(f"{label}: {path}")
    if summary.get("mlflow_run"):
        console.print(f"MLflow run: {summary['mlflow_run']}")


def _score(score: dict[str, Any] | None) -> str:
    if score is None:
        return "–"
    text = f"{score['score']:.2f}"
    return f"[bold red]{text}[/]" if score["score"] > 1 else text


def _since(text: str | None) -> float | None:
    """``--since``: hours ago (a number) or an ISO time, as a UNIX time."""
    from datetime import datetime

    from dubops.errors import InputError

    if text is None:
        return None
    try:
        return time.time() - float(text) * 3600
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise InputError(
            f"--since {text!r}: give hours ago (e.g. 24) or an ISO time (e.g. 2025-06-01T08:00Z)"
        ) from None


def _default_log(config: DubOpsConfig) -> Path:
    """Where the servers log: monitoring.log_dir, else <serving.state_dir>/requests."""
    watch = config.monitoring
    return Path(watch.log_dir) if watch.log_dir else Path(config.serving.state_dir) / "requests"


def _default_out() -> Path:
    return Path("outputs/monitoring") / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _console() -> Any:
    """stderr; 160 columns when it is not a terminal (piped output keeps whole rows)."""
    import sys

    from rich.console import Console

    return Console(stderr=True, width=None if sys.stderr.isatty() else 160)
