"""``dubops train``: the speech generator's two stages (more stages join later)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dubops.cli.common import err_console, off_switch, print_json, tracked_run, user_errors
from dubops.cli.options import config_options

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig

app = typer.Typer(help="Train the models (each stage resumable, logged to MLflow).")

DataOption = Annotated[
    Path, typer.Option("--data", "-d", help="Corpus folder (from `dubops data synth`).")
]
ResumeOption = Annotated[
    bool, typer.Option("--resume", help="Continue from the latest checkpoint in --out.")
]
MinutesOption = Annotated[
    float | None,
    typer.Option(
        "--max-minutes",
        min=0.1,
        help="Safety limit: a stage still short of its updates after this many minutes saves "
        "a checkpoint and fails (--resume continues it). Budgets are updates, not minutes.",
    ),
]
MlflowOption = Annotated[bool, off_switch("--no-mlflow", "Do not track the run in MLflow.")]


def _run(stage: str, config, data: Path, as_json: bool, mlflow: bool, fn) -> None:
    with tracked_run(stage, config, data, mlflow) as tracker:
        result = fn(tracker)
    if as_json:
        print_json(result.__dict__)
    else:
        err_console().print(
            f"[bold green]{stage}[/] step {result.step}, train loss {result.train_loss}, "
            f"val loss {result.val_loss}, {result.minutes} min -> {result.weights}"
        )


def _refine_in_place(
    stage: str, config, data: Path, mlflow: bool, as_json: bool, refine, summary
) -> None:
    """A refinement of a finished folder, tracked; its result as JSON or one summary line."""
    from dataclasses import asdict

    with tracked_run(stage, config, data, mlflow) as tracker:
        result = refine(tracker)
    if as_json:
        print_json(asdict(result))
    else:
        err_console().print(summary(result))


@app.command("dit-pretrain")
@config_options(json=True)
def dit_pretrain(
    data: DataOption = Path("data/tiny"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")] = Path(
        "outputs/dit_pretrain"
    ),
    resume: ResumeOption = False,
    max_minutes: MinutesOption = None,
    mlflow: MlflowOption = True,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Stage 2.1: pretrain the DiT with conditional flow matching (F5-TTS objective)."""
    with user_errors():
        from dubops.speech.stages import pretrain_dit

        _run(
            "dit_pretrain",
            config,
            data,
            as_json,
            mlflow,
            lambda tracker: pretrain_dit(config, data, out, resume, max_minutes, tracker),
        )


@app.command("controlnet")
@config_options(json=True)
def controlnet(
    data: DataOption = Path("data/tiny"),
    pretrained: Annotated[
        Path, typer.Option("--pretrained", help="Finished dit-pretrain run folder.")
    ] = Path("outputs/dit_pretrain"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")] = Path(
        "outputs/controlnet"
    ),
    resume: ResumeOption = False,
    max_minutes: MinutesOption = None,
    mlflow: MlflowOption = True,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Stage 2.2: tune the ControlNet (video + conclusion) and the duration predictor."""
    with user_errors():
        from dubops.speech.stages import tune_controlnet

        _run(
            "controlnet",
            config,
            data,
            as_json,
            mlflow,
            lambda tracker: tune_controlnet(
                config, data, pretrained, out, resume, max_minutes, tracker
            ),
        )


@app.command("duration")
@config_options(json=True)
def duration(
    model: Annotated[
        Path, typer.Option("--model", "-m", help="Finished controlnet run folder (updated).")
    ] = Path("outputs/controlnet"),
    data: DataOption = Path("data/tiny"),
    mlflow: MlflowOption = True,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Refine a ControlNet folder's duration predictor alone (lip sync), in place.

    `dubops train controlnet` already ends with this when
    speech.duration_refine.steps > 0; run it on an older folder, or for more
    updates (--set speech.duration_refine.steps=N). Frozen encoders, features
    computed once: minutes on a CPU. Keeps the weights with the lowest
    validation onset error (video frames between where each phoneme starts and
    where it should).
    """
    with user_errors():
        from dubops.speech.stages import refine_run_durations

        _refine_in_place(
            "duration_refine",
            config,
            data,
            mlflow,
            as_json,
            lambda tracker: refine_run_durations(config, data, model, tracker),
            lambda r: (
                f"[bold green]duration[/] val onset error {r.onset_error_before:.3f} -> "
                f"{r.onset_error_after:.3f} frames (best at update {r.best_step} of {r.steps}), "
                f"{r.minutes:.1f} min -> {model}"
            ),
        )


@app.command("pitch")
@config_options(json=True)
def pitch(
    model: Annotated[
        Path,
        typer.Option("--model", "-m", help="Finished controlnet or graph run folder (updated)."),
    ] = Path("outputs/controlnet"),
    data: DataOption = Path("data/tiny"),
    mlflow: MlflowOption = True,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Refine a ControlNet or graph folder's pitch head alone (emotion), in place.

    Both stages already end with this when speech.pitch.refine_steps > 0; run it
    after new pitch targets, or for more updates (--set
    speech.pitch.refine_steps=N). The conditions (video, conclusion, and a graph
    folder's footage) are computed once and frozen: minutes on a CPU. Keeps the
    head with the lowest validation loss; only the head changes. The folder then
    serves the head's contour spread fitted on val (speech.pitch.contour_scale;
    --set speech.pitch.fit_contour_scale=false keeps the folder's).
    """
    with user_errors():
        from dubops.speech.stages import refine_run_pitch

        _refine_in_place(
            "pitch_refine",
            config,
            data,
            mlflow,
            as_json,
            lambda tracker: refine_run_pitch(config, data, model, tracker),
            lambda r: (
                f"[bold green]pitch[/] val loss {r.val_loss_before:.4f} -> "
                f"{r.val_loss_after:.4f} (best at update {r.best_step} of {r.steps}), "
                f"contour spread x{r.contour_spread:.2f}, {r.minutes:.1f} min -> {model}"
            ),
        )
