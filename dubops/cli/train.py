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
    off_switch,
    print_json,
    tracked_run,
    user_errors,
)
from dubops.errors import InputError

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


@app.command("duration")
def duration(
    model: Annotated[
        Path, typer.Option("--model", "-m", help="Finished controlnet run folder (updated).")
    ] = Path("outputs/controlnet"),
    data: DataOption = Path("data/tiny"),
    mlflow: MlflowOption = True,
    preset: PresetOption = "tiny",
    config_file: ConfigFileOption = None,
    overrides: SetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Refine a ControlNet folder's duration predictor alone (lip sync), in place.

    `dubops train controlnet` already ends with this when
    speech.duration_refine.steps > 0; run it on an older folder, or for more
    updates (--set speech.duration_refine.steps=N). Frozen encoders, features
    computed once: minutes on a CPU. Keeps the weights with the lowest
    validation onset error (video frames between where each phoneme starts and
    where it should).
    """
    config = load(preset, config_file, overrides)
    with user_errors():
        from dataclasses import asdict

        from dubops.speech.stages import refine_run_durations

        with tracked_run("duration_refine", config, data, mlflow) as tracker:
            result = refine_run_durations(config, data, model, tracker)
        if as_json:
            print_json(asdict(result))
        else:
            err_console().print(
                f"[bold green]duration[/] val onset error {result.onset_error_before:.3f} -> "
                f"{result.onset_error_after:.3f} frames (best at update {result.best_step} of "
                f"{result.steps}), {result.minutes:.1f} min -> {model}"
            )


def dub_command(
    model: Annotated[
        Path, typer.Option("--model", "-m", help="Finished controlnet (or graph) run folder.")
    ],
    data: DataOption = Path("data/tiny"),
    library: Annotated[
        Path | None,
        typer.Option("--library", help="Footage library; required for a graph run folder."),
    ] = None,
    split: Annotated[
        list[str] | None, typer.Option("--split", help="Splits (default: test_s1 test_s2).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder of <clip_id>.wav.")] = Path(
        "outputs/dubbed"
    ),
    ablation: Annotated[
        str, typer.Option(help="none, no-visual, no-conclusion or no-duration.")
    ] = "none",
    max_clips: Annotated[int | None, typer.Option(min=1, help="Only the first N clips.")] = None,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 1,
    preset: PresetOption = "tiny",
    config_file: ConfigFileOption = None,
    overrides: SetOption = None,
) -> None:
    """Dub every clip of corpus splits with a trained generator (then run `dubops eval`)."""
    config = load(preset, config_file, overrides)
    with user_errors():
        import torch

        from dubops.cli.common import progress_bar
        from dubops.speech.corpus_dubbing import dub_corpus
        from dubops.speech.generator import Ablation, SpeechGenerator

        torch.set_num_threads(threads)
        generator = SpeechGenerator.from_dir(
            model,
            config.audio,
            library=library,
            backend=config.library.backend,
            lip_align=config.speech.lip_align,
        )
        with progress_bar(f"dubbing ({ablation})") as update:
            paths = dub_corpus(
                generator,
                data,
                split or ["test_s1", "test_s2"],
                out,
                Ablation.named(ablation),
                max_clips,
                update,
            )
        err_console().print(f"[bold green]dubbed[/] {len(paths)} clips -> {out}")


def speak_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="Finished controlnet run folder.")],
    script: Annotated[str, typer.Option("--script", help="What to say.")],
    prompt: Annotated[Path, typer.Option("--prompt", help="Timbre prompt wav (0.5 s or more).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output wav.")] = Path("speech.wav"),
    video: Annotated[
        Path | None, typer.Option("--video", help="Silent clip: sets the slot and the lips.")
    ] = None,
    seconds: Annotated[
        float | None, typer.Option("--seconds", help="Slot length when there is no video.")
    ] = None,
    conclusion: Annotated[
        str | None,
        typer.Option(help="scene_type,gender,age,emotion e.g. monologue,female,adult,joy"),
    ] = None,
    nfe: Annotated[int | None, typer.Option(min=1, help="ODE steps.")] = None,
    preset: PresetOption = "tiny",
    config_file: ConfigFileOption = None,
    overrides: SetOption = None,
) -> None:
    """Quick check: speak one script in a prompt's voice, fitted to a video slot."""
    config = load(preset, config_file, overrides)
    with user_errors():
        from dubops.cli import checks

        checks.output_file(out, "--out", ".wav")
        checks.input_dir(model, "--model", hint="give a finished controlnet run folder")
        text = checks.script_text(script, "--script")
        if video is not None:
            checks.script_fits(text, checks.video_file(video, "--video"), "--script")
        elif seconds is not None:
            checks.script_fits(text, checks.slot_seconds(seconds, "--seconds"), "--script")
        else:
            raise InputError("give --video (the slot and the lips) or --seconds (the slot)")
        checks.prompt_wav(prompt, "--prompt")
        from dubops.audio import read_wav, write_wav
        from dubops.speech.generator import SpeechGenerator

        fields = None
        if conclusion is not None:
            parts = [p.strip() for p in conclusion.split(",")]
            if len(parts) != 4:
                raise InputError(
                    "--conclusion needs four comma-separated values: scene_type,gender,age,emotion"
                )
            fields = dict(zip(("scene_type", "gender", "age", "emotion"), parts, strict=True))
        frames, fps = None, 25.0
        if video is not None:
            from dubops.video import read_video

            frames, fps = read_video(video)
        wave_in, rate = read_wav(prompt)
        generator = SpeechGenerator.from_dir(model, config.audio, lip_align=config.speech.lip_align)
        wave = generator.generate(
            script,
            wave_in,
            rate,
            video_frames=frames,
            target_seconds=seconds,
            conclusion=fields,
            nfe=nfe,
            fps=fps,
        )
        write_wav(out, wave, config.audio.sample_rate)
        err_console().print(
            f"[bold green]wrote[/] {out} ({len(wave) / config.audio.sample_rate:.2f} s)"
        )
