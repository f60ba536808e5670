"""``dubops dub-clip``: dub one clip end to end with a bundle or a registered model."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dubops.cli.common import (
    ConfigFileOption,
    JsonOption,
    PresetOption,
    SetOption,
    dub_stages,
    err_console,
    load,
    off_switch,
    print_json,
    user_errors,
)
from dubops.errors import InputError

if TYPE_CHECKING:
    from dubops.dubbing import DubRequest


def dub_clip_command(
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="Bundle folder, or models:/dubbing@champion (or /VERSION)."
        ),
    ] = "models:/dubbing@champion",
    clip: Annotated[
        str | None, typer.Option("--clip", help="A corpus clip_id (its video, script, prompt).")
    ] = None,
    data: Annotated[Path, typer.Option("--data", "-d", help="Corpus of --clip.")] = Path(
        "data/tiny"
    ),
    video: Annotated[Path | None, typer.Option("--video", help="A silent clip (mp4).")] = None,
    script: Annotated[str | None, typer.Option("--script", help="The line to speak.")] = None,
    script_file: Annotated[
        Path | None, typer.Option("--script-file", help="The line to speak, from a UTF-8 file.")
    ] = None,
    prompt: Annotated[
        Path | None,
        typer.Option("--prompt", help="Timbre prompt: a wav of the voice (0.5 s or more)."),
    ] = None,
    react: Annotated[str, typer.Option("--react", help="The preceding line, if known.")] = "",
    library: Annotated[
        Path | None,
        typer.Option("--library", help="Footage library (default: the one the model records)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Dubbed video (.mp4).")] = Path(
        "out/demo.mp4"
    ),
    evaluate: Annotated[
        bool, off_switch("--no-eval", "Do not score a corpus clip against its truth.")
    ] = True,
    mos: Annotated[bool, off_switch("--no-mos", "Leave DNSMOS out of the clip's metrics.")] = True,
    seed: Annotated[int, typer.Option(help="Sampler noise seed.")] = 0,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 1,
    preset: PresetOption = "tiny",
    config_file: ConfigFileOption = None,
    overrides: SetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reason about the clip, retrieve its footage, speak the script, mux it into an mp4.

    Give a corpus clip (--clip, --data) or your own: --video, --script (or
    --script-file) and --prompt (a wav of the voice to speak in). Writes OUT
    (.mp4), and beside it .wav, .reasoning.txt and .json (conclusion, timings,
    retrieved footage and, for a corpus clip, its metrics); nothing is written
    when it fails.
    """
    config = load(preset, config_file, overrides)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with user_errors():
        # Every input is checked before torch or a model loads (seconds, not minutes).
        request, row = _checked_request(
            config, model, clip, data, video, script, script_file, prompt, react, library, out
        )
        with dub_stages(quiet=as_json) as stage:
            summary, result, files = _dub(
                config, model, library, request, row, data, out, seed, threads,
                evaluate, mos, stage,
            )  # fmt: skip
    if as_json:
        print_json({**result.to_json(), **summary, "files": files})
        return
    console = err_console()
    c = result.conclusion
    console.print(
        f"[bold green]dubbed[/] {summary['clip']} -> {out} ({result.duration:.2f} s), "
        f"{c['scene_type']}, {c['gender']} {c['age']}, {c['emotion']}"
        + ("" if result.parse_ok else " [yellow](fallback conclusion: answer unparsable)[/]")
    )
    parts = ", ".join(f"{k} {v:.2f}" for k, v in result.seconds.items())
    console.print(f"seconds: {parts}; load {summary['timings']['load']:.2f}")
    if "metrics" in summary:
        m = summary["metrics"]
        keys = ("mcd_dtw", "spk_sim_target", "wer", "emo_acc", "lse_abs_offset_frames")
        console.print("metrics: " + ", ".join(f"{k} {m[k]:.3g}" for k in keys if k in m))
    console.print(f"reasoning -> {files['reasoning']}; summary -> {files['json']}")


def _checked_request(
    config,
    model: str,
    clip: str | None,
    data: Path,
    video: Path | None,
    script: str | None,
    script_file: Path | None,
    prompt: Path | None,
    react: str,
    library: Path | None,
    out: Path,
) -> tuple[DubRequest, dict[str, Any] | None]:
    """The request, every input checked (files, script, prompt, output path); no model."""
    from dubops.cli import checks
    from dubops.registry.loading import MODELS_SCHEME, parse_models_uri

    checks.output_file(out, "--out", ".mp4")
    if model.startswith(MODELS_SCHEME):
        parse_models_uri(model)
    else:
        checks.input_dir(
            Path(model),
            "--model",
            "bundle.json",
            "give a bundle folder or models:/dubbing@champion",
        )
    if library is not None:
        checks.input_dir(library, "--library", "library.json", "build one: dubops library build")
    request, row = _checked_clip(clip, data, video, script, script_file, prompt, react)
    if model.startswith(MODELS_SCHEME):  # last: the inputs' own errors come first
        _require_store(config, parse_models_uri(model)[0])
    return request, row


def _checked_clip(
    clip: str | None,
    data: Path,
    video: Path | None,
    script: str | None,
    script_file: Path | None,
    prompt: Path | None,
    react: str,
) -> tuple[DubRequest, dict[str, Any] | None]:
    """A corpus clip's request or the user's own, every file and line checked."""
    from dubops.cli import checks
    from dubops.dubbing import DubRequest, corpus_request

    if react:
        checks.script_text(react, "--react")
    if clip is not None:
        given = [n for n, v in _own_clip(video, script, script_file, prompt) if v is not None]
        if given:
            raise InputError(f"give --clip, or --video --script --prompt, not both ({given})")
        request, row = corpus_request(checks.corpus_dir(data), clip)
        seconds = checks.video_file(request.video_path, f"--clip {clip}: its video")
        checks.script_fits(request.script, seconds, f"--clip {clip}: its script")
        checks.prompt_wav(request.prompt_path, f"--clip {clip}: its prompt")
        return request, row
    if script is not None and script_file is not None:
        raise InputError("give --script or --script-file, not both")
    missing = [n for n, v in _own_clip(video, script or script_file, "", prompt) if v is None]
    if missing:
        raise InputError(
            f"give --clip ID, or a clip as --video --script --prompt (missing {missing})"
        )
    assert video is not None and prompt is not None
    seconds = checks.video_file(video, "--video")
    if script_file is not None:
        text, option = checks.script_file(script_file, "--script-file"), "--script-file"
    else:
        text, option = checks.script_text(script or "", "--script"), "--script"
    checks.script_fits(text, seconds, option)
    checks.prompt_wav(prompt, "--prompt")
    return DubRequest(video, text, prompt, react), None


def _require_store(config, name: str) -> None:
    """A registry URI needs a store that exists: say so before torch loads (a file check)."""
    from dubops.errors import TrackingStoreError
    from dubops.registry.store import RegistryError
    from dubops.tracking import require_store

    try:
        require_store(config.tracking)
    except TrackingStoreError as exc:
        raise RegistryError(f"the registry has no model {name!r} yet: {exc}") from None


def _own_clip(video, script, script_file, prompt) -> list[tuple[str, object]]:
    return [("--video", video), ("--script", script), ("--script-file", script_file),
            ("--prompt", prompt)]  # fmt: skip


def _dub(
    config,
    model: str,
    library: Path | None,
    request: DubRequest,
    row: dict[str, Any] | None,
    data: Path,
    out: Path,
    seed: int,
    threads: int,
    evaluate: bool,
    mos: bool,
    stage,
) -> tuple[dict[str, Any], Any, dict[str, str]]:
    """Load, dub, mux, score and write; the files appear at OUT only when all succeeded."""
    from dubops.cli.checks import staged_output

    stage("load")
    import torch

    from dubops.dub_outputs import reasoning_check, score_dubbed_clip, write_dub_outputs
    from dubops.dubbing import mux_dub
    from dubops.registry.loading import load_pipeline

    torch.set_num_threads(threads)
    timings: dict[str, float] = {}
    began = time.perf_counter()
    pipeline, loaded = load_pipeline(config, model, library)
    try:
        timings["load"] = round(time.perf_counter() - began, 3)
        result = pipeline.dub_request(request, seed=seed, on_stage=stage)
        with staged_output(out) as staged:
            stage("mux")
            tick = time.perf_counter()
            mux_dub(request.video_path, result.wave, result.sample_rate, staged)
            timings["mux"] = round(time.perf_counter() - tick, 3)
            summary: dict = {"model": loaded, "clip": request.clip_id or request.video_path.stem}
            summary["script"] = request.script
            summary["reasoner_fallbacks"] = pipeline.fallbacks
            if row is not None:
                truth = {a: row[a] for a in ("scene_type", "gender", "age", "emotion")}
                summary |= {"split": row["split"], "speaker": row["speaker"], "truth": truth}
                summary["reasoning_check"] = reasoning_check(result.conclusion, truth)
                if evaluate:
                    stage("evaluate")
                    tick = time.perf_counter()
                    summary["metrics"] = score_dubbed_clip(
                        config, data, row, staged.with_suffix(".wav"), mos=mos
                    )
                    timings["evaluate"] = round(time.perf_counter() - tick, 3)
            summary["timings"] = {**timings, "total": round(time.perf_counter() - began, 3)}
            header = f"clip {summary['clip']}" + (f" ({row['split']})" if row is not None else "")
            header += f", model {loaded['model']}" + (
                f" (v{loaded['version']})" if "version" in loaded else ""
            )
            stage("write")
            files = write_dub_outputs(
                staged, result, request.script, header, summary, summary.get("truth"), out
            )
    finally:
        pipeline.close()
    return summary, result, files
