"""``dubops train``: the speech generator's two stages (more stages join later)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dubops.cli.common import (
    ConfigFileOption,
    JsonOption,
    PresetOption,
    SetOption,
    err_console,
    load,
    print_json,
    user_errors,
)

app = typer.Typer(help="Train the models (each stage resumable, logged to MLflow).")

DataOption = Annotated[
    Path, typer.Option("--data", "-d", help="Corpus folder (from `dubops data synth`).")
]
ResumeOption = Annotated[
    bool, typer.Option("--resume", help="Continue from the latest checkpoint in --out.")
]
MinutesOption = Annotated[
    float | None,
    typer.Option("--max-minutes", min=0.1, help="Stop cleanly (with a checkpoint) after this."),
]
MlflowOption = Annotated[
    bool, typer.Option("--mlflow/--no-mlflow", help="Track the run in MLflow.")
]


def _run(stage: str, config, data: Path, as_json: bool, mlflow: bool, fn) -> None:
    import contextlib

    from dubops.data.layout import CorpusLayout, manifest_hash

    layout = CorpusLayout(data)
    if not layout.manifest.is_file():
        raise ValueError(f"--data {data}: no manifest.parquet; run `dubops data synth` first")
    context = contextlib.nullcontext(None)
    if mlflow:
        from dubops.tracking import start_run

        context = start_run(config, stage, data_version=manifest_hash(layout.manifest))
    with context as tracker:
        result = fn(tracker)
    if as_json:
        print_json(result.__dict__)
    else:
        err_console().print(
            f"[bold green]{stage}[/] step {result.step}, train loss {result.train_loss}, "
            f"val loss {result.val_loss}, {result.minutes} min -> {result.weights}"
        )


@app.command("dit-pretrain")
def dit_pretrain(
    data: DataOption = Path("data/tiny"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")] = Path(
        "outputs/dit_pretrain"
    ),
    resume: ResumeOption = False,
    max_minutes: MinutesOption = None,
    mlflow: MlflowOption = True,
    preset: PresetOption = "tiny",
    config_file: ConfigFileOption = None,
    overrides: SetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stage 2.1: pretrain the DiT with conditional flow matching (F5-TTS objective)."""
    config = load(preset, config_file, overrides)
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
    preset: PresetOption = "tiny",
    config_file: ConfigFileOption = None,
    overrides: SetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stage 2.2: tune the ControlNet (video + conclusion) and the duration predictor."""
    config = load(preset, config_file, overrides)
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
