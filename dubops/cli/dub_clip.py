"""``dubops dub-clip``: dub one clip end to end with a bundle or a registered model."""

from __future__ import annotations

import os
import time
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
    prompt: Annotated[
        Path | None, typer.Option("--prompt", help="Timbre prompt wav (0.5 s or more).")
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
        bool, typer.Option("--eval/--no-eval", help="Score a corpus clip against its truth.")
    ] = True,
    mos: Annotated[bool, typer.Option(help="DNSMOS in the clip's metrics.")] = True,
    seed: Annotated[int, typer.Option(help="Sampler noise seed.")] = 0,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 1,
    preset: PresetOption = "tiny",
    config_file: ConfigFileOption = None,
    overrides: SetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reason about the clip, retrieve its footage, speak the script, mux it into an mp4.

    Writes OUT (.mp4), and beside it .wav, .reasoning.txt and .json (conclusion,
    timings, retrieved footage and, for a corpus clip, its metrics).
    """
    config = load(preset, config_file, overrides)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with user_errors():
        import torch

        from dubops.dub_outputs import reasoning_check, score_dubbed_clip, write_dub_outputs
        from dubops.dubbing import DubRequest, corpus_request, mux_dub
        from dubops.registry.loading import load_pipeline

        torch.set_num_threads(threads)
        row = None
        if clip is not None:
            if video is not None or script is not None or prompt is not None:
                raise ValueError("give --clip, or --video --script --prompt, not both")
            request, row = corpus_request(data, clip)
        else:
            missing = [
                n
                for n, v in (("--video", video), ("--script", script), ("--prompt", prompt))
                if v is None
            ]
            if missing:
                raise ValueError(
                    f"give --clip ID, or a clip as --video --script --prompt (missing {missing})"
                )
            request = DubRequest(video, script, prompt, react)  # type: ignore[arg-type]
        if out.suffix.lower() != ".mp4":
            raise ValueError(f"--out {out}: the dubbed video must be an .mp4 file")
        timings: dict[str, float] = {}
        began = time.perf_counter()
        pipeline, loaded = load_pipeline(config, model, library)
        timings["load"] = round(time.perf_counter() - began, 3)
        result = pipeline.dub_request(request, seed=seed)
        tick = time.perf_counter()
        mux_dub(request.video_path, result.wave, result.sample_rate, out)
        timings["mux"] = round(time.perf_counter() - tick, 3)
        summary: dict = {"model": loaded, "clip": clip or request.video_path.stem}
        summary["script"] = request.script
        summary["reasoner_fallbacks"] = pipeline.fallbacks
        if row is not None:
            truth = {a: row[a] for a in ("scene_type", "gender", "age", "emotion")}
            summary |= {"split": row["split"], "speaker": row["speaker"], "truth": truth}
            summary["reasoning_check"] = reasoning_check(result.conclusion, truth)
            if evaluate:
                tick = time.perf_counter()
                summary["metrics"] = score_dubbed_clip(
                    config, data, row, out.with_suffix(".wav"), mos=mos
                )
                timings["evaluate"] = round(time.perf_counter() - tick, 3)
        summary["timings"] = {**timings, "total": round(time.perf_counter() - began, 3)}
        header = f"clip {summary['clip']}" + (f" ({row['split']})" if row is not None else "")
        header += f", model {loaded['model']}" + (
            f" (v{loaded['version']})" if "version" in loaded else ""
        )
        files = write_dub_outputs(
            out, result, request.script, header, summary, summary.get("truth")
        )
        pipeline.close()
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
    console.print(f"seconds: {parts}; load {timings['load']:.2f}")
    if "metrics" in summary:
        m = summary["metrics"]
        keys = ("mcd_dtw", "spk_sim_target", "wer", "emo_acc", "lse_abs_offset_frames")
        console.print("metrics: " + ", ".join(f"{k} {m[k]:.3g}" for k in keys if k in m))
    console.print(f"reasoning -> {files['reasoning']}; summary -> {files['json']}")
