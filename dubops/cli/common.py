"""Shared CLI pieces: config options, error handling, progress bars, JSON output."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

PresetOption = Annotated[
    str, typer.Option("--preset", "-p", help="Configuration preset: tiny (CPU) or base (GPU).")
]
ConfigFileOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML file merged over the preset.", dir_okay=False),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override one setting, e.g. --set synth.clips=50 (repeatable; values are YAML).",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")
]


def load(preset: str, config_file: Path | None, overrides: list[str] | None):
    """Load the configuration or exit with the loader's message."""
    from dubops.config import load_config

    with user_errors():
        return load_config(preset, config_file, overrides)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn expected errors (bad config, bad input) into a red message and exit code 2."""
    from dubops.config import ConfigError

    try:
        yield
    except (ConfigError, ValueError, FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        err_console().print(f"[bold red]error:[/] {message}")
        raise typer.Exit(2) from None


def tracked_run(stage: str, config: Any, data: Path, mlflow: bool):
    """An MLflow run for a training command on corpus ``data`` (or nothing with --no-mlflow).

    Checks the corpus first, so a wrong --data is a clear error before any run opens.
    """
    from dubops.data.layout import CorpusLayout, manifest_hash

    layout = CorpusLayout(data)
    if not layout.manifest.is_file():
        raise ValueError(f"--data {data}: no manifest.parquet; run `dubops data synth` first")
    if not mlflow:
        return contextlib.nullcontext(None)
    from dubops.tracking import start_run

    return start_run(config, stage, data_version=manifest_hash(layout.manifest))


def err_console():
    """A Rich console on stderr (stdout is reserved for --json)."""
    from rich.console import Console

    return Console(stderr=True)


def print_json(data: Any) -> None:
    """One JSON object on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def progress_bar(description: str, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar on stderr; yields ``update(done, total)``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console(),
        disable=quiet,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


@contextlib.contextmanager
def staged_progress(quiet: bool = False) -> Iterator[Callable[[str, int, int], None]]:
    """A progress display with one bar per named stage; yields ``update(stage, done, total)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console(),
        disable=quiet,
    )
    tasks: dict[str, Any] = {}
    with progress:

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        yield update
