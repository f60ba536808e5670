"""Shared CLI pieces: --json, error handling, progress bars, JSON output.

The config options (--preset, --config, --set) are in :mod:`dubops.cli.options`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer


class _CliState:
    """What the running command asked for that error reporting needs to know."""

    verbose = False
    json = False


STATE = _CliState()


def _remember_json(value: bool) -> bool:
    STATE.json = bool(value)
    return value


JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON object on stdout instead of tables (errors too).",
        callback=_remember_json,
    ),
]


def off_switch(name: str, help: str) -> Any:
    """A single ``--no-x`` flag for a setting that is on by default; the value is "on?".

    typer spells on/off options as ``--x/--no-x`` pairs; where only switching off
    makes sense, one flag reads better in ``--help``. The parameter keeps meaning
    "on" (True unless the flag is given), so callers read naturally.
    """
    return typer.Option(name, help=help, callback=_on_unless_given, show_default=False)


def _on_unless_given(ctx: typer.Context, param: typer.CallbackParam, value: bool) -> bool:
    # typer vendors click: compare the source's name, not the enum class.
    source = ctx.get_parameter_source(param.name or "")
    return source is None or source.name in ("DEFAULT", "DEFAULT_MAP")


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn errors a user can fix into one line (or JSON with --json) and exit code 2.

    Only the project's own errors (:class:`~dubops.errors.DubOpsError`), MLflow's,
    connection and permission errors count; any other exception is a bug and keeps
    its traceback. ``-v`` prints the traceback of these too.
    """
    try:
        yield
    except Exception as exc:
        if not is_user_error(exc):
            raise
        report_error(exc)
        raise typer.Exit(2) from None


def is_user_error(exc: BaseException) -> bool:
    """The project's errors, MLflow's, and the machine's (connection, permission)."""
    from dubops.errors import DubOpsError

    if isinstance(exc, DubOpsError | PermissionError | ConnectionError):
        return True
    names = {f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__}
    # Checked by name so that neither MLflow nor requests is imported for it.
    return bool(names & _FOREIGN_USER_ERRORS)


_FOREIGN_USER_ERRORS = {
    "mlflow.exceptions.MlflowException",
    "requests.exceptions.ConnectionError",
    "urllib3.exceptions.HTTPError",
}


def error_message(exc: BaseException) -> str:
    """One line: the message's lines joined, MLflow's and the OS's errors given context."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if isinstance(exc, KeyError) and exc.args:
        lines = [str(exc.args[0])]
    text = (lines[0] + (" " + "; ".join(lines[1:]) if len(lines) > 1 else "")) if lines else ""
    kind = type(exc).__name__
    if isinstance(exc, PermissionError):
        where = exc.filename or ""
        return f"permission denied{': ' + str(where) if where else ''}; choose a path you can write"
    if kind == "MlflowException" or "mlflow" in type(exc).__module__:
        return f"MLflow: {text} (store: {_tracking_hint()})"
    if (
        isinstance(exc, ConnectionError)
        or "ConnectionError" in kind
        or "urllib3" in type(exc).__module__
    ):
        return f"cannot connect: {text}; check that the server is up (store: {_tracking_hint()})"
    return text or kind


def _tracking_hint() -> str:
    import os

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return f"MLFLOW_TRACKING_URI={uri}" if uri else "tracking.tracking_uri of the config"


def report_error(exc: BaseException) -> None:
    """Print ``exc`` the way the command asked: JSON on stdout, else one red line on stderr."""
    if STATE.verbose:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    message = error_message(exc)
    if STATE.json:
        print_json({"error": message, "type": type(exc).__name__})
    else:
        from rich.markup import escape

        # soft_wrap: one line even where Rich would wrap at 80 columns (not a terminal).
        err_console().print(
            f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False
        )


def tracked_run(stage: str, config: Any, data: Path, mlflow: bool):
    """An MLflow run for a training command on corpus ``data`` (or nothing with --no-mlflow).

    Checks the corpus first, so a wrong --data is a clear error before any run opens.
    """
    from dubops.cli.checks import corpus_dir
    from dubops.data.layout import CorpusLayout, manifest_hash

    layout = CorpusLayout(corpus_dir(data))
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


@contextlib.contextmanager
def dub_stages(quiet: bool = False) -> Iterator[Callable[[str], None]]:
    """One line per stage of a dub on stderr (spinner while it runs, its seconds once done).

    Yields ``begin(stage)``: the stage before it is marked done. A newcomer sees
    where the time goes (loading the model, reasoning, speech) instead of silence.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(
        SpinnerColumn(finished_text="[green]done[/]"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console(),
        disable=quiet,
    )
    current: list[Any] = []

    def finish() -> None:
        if current:
            progress.update(current[-1], total=1, completed=1)
            progress.stop_task(current[-1])

    def begin(stage: str) -> None:
        finish()
        current.append(progress.add_task(_STAGE_TEXT.get(stage, stage), total=None))

    with progress:
        try:
            yield begin
        except BaseException:
            if current:  # the stage that failed keeps no "done" mark
                progress.update(
                    current[-1], description="[red]failed:[/] " + progress.tasks[-1].description
                )
                progress.stop_task(current[-1])
            raise
        finish()


_STAGE_TEXT = {
    "load": "load the model",
    "read": "read the video and the prompt",
    "reason": "reason: scene type and voice",
    "embed": "embed the clip (scene, face, text)",
    "retrieve": "retrieve reference footage",
    "generate": "generate speech (durations, conditions, sampler)",
    "vocode": "vocode the mel",
    "mux": "mux the speech into the video",
    "evaluate": "score against the ground truth",
    "write": "write the reasoning and the summary",
}
