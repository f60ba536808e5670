"""``dubops train extractors``: train the four emotion extractors of the footage library."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dubops.cli.common import err_console, print_json, progress_bar, tracked_run, user_errors
from dubops.cli.options import config_options
from dubops.cli.train import DataOption, MinutesOption, MlflowOption

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig


@config_options(json=True)
def train_extractors(
    data: DataOption = Path("data/tiny"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Extractors folder.")] = Path(
        "outputs/extractors"
    ),
    max_minutes: MinutesOption = None,
    mlflow: MlflowOption = True,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Train the scene, face, text and audio emotion extractors (Authentic-Dubber's MRFL)."""
    with user_errors():
        from dubops.emotion.extractor_training import train_extractors as train

        with (
            tracked_run("extractors", config, data, mlflow) as tracker,
            progress_bar("extractors", quiet=as_json) as update,
        ):
            result = train(config, data, out, tracker, max_minutes, update)
    if as_json:
        print_json(result.__dict__)
        return
    console = err_console()
    for name, acc in result.accuracy.items():
        held = ", ".join(f"{s} {100 * a:.1f} %" for s, a in acc.items() if s != "train")
        console.print(f"[bold]{name}[/] ({result.versions[name]}): {held}")
    console.print(f"[bold green]extractors[/] {result.minutes} min -> {out}")
