"""The dubbing commands, each a thin layer over :class:`dubops.inference.DubbingPipeline`.

* ``dubops dub-clip``: one clip end to end (reason, retrieve, speak, mux) with
  a bundle, a registered model or training outputs; its files and metrics;
* ``dubops dub``: every clip of corpus splits, the served path or a named
  oracle (``--oracle conclusion``, ``--oracle footage``), for ``dubops eval``;
* ``dubops speak``: a quick check of a speech model alone: a script, a voice,
  a slot, and a conclusion you give.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dubops.cli.common import dub_stages, err_console, off_switch, print_json, user_errors
from dubops.cli.options import config_options
from dubops.errors import InputError

# With a run folder as --model (training outputs, before any bundle): its other parts.
ReasonerOption = Annotated[
    Path | None, typer.Option("--reasoner", help="With a run folder: the reasoner's folder.")
]
ExtractorsOption = Annotated[
    Path | None,
    typer.Option("--extractors", help="With a graph run folder: the library's extractors."),
]
OracleOption = Annotated[
    list[str] | None,
    typer.Option(
        "--oracle",
        help="Replace a served decision by the clip's ground truth: 'conclusion' (the labels "
        "instead of the reasoner's) or 'footage' (the library's stored vectors instead of the "
        "extractors'). Repeat for both. Evaluation only: it needs a corpus clip.",
    ),
]

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig
    from dubops.inference import DubRequest


# The model of a served dub: a registry URI, a bundle, or training outputs with their parts.
ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="models:/dubbing@champion (or /VERSION), a bundle folder, or a controlnet/graph "
        "run folder (then --reasoner and --extractors).",
    ),
]
LibraryOption = Annotated[
    Path | None,
    typer.Option("--library", help="Footage library (default: the one the model records)."),
]


@config_options(json=True)
def dub_clip_command(
    model: ModelOption = "models:/dubbing@champion",
    reasoner: ReasonerOption = None,
    extractors: ExtractorsOption = None,
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
    library: LibraryOption = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Dubbed video (.mp4).")] = Path(
        "out/demo.mp4"
    ),
    evaluate: Annotated[
        bool, off_switch("--no-eval", "Do not score a corpus clip against its truth.")
    ] = True,
    mos: Annotated[bool, off_switch("--no-mos", "Leave DNSMOS out of the clip's metrics.")] = True,
    seed: Annotated[int, typer.Option(min=0, help="Sampler noise seed.")] = 0,
    oracle: OracleOption = None,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 1,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Reason about the clip, retrieve its footage, speak the script, mux it into an mp4.

    Give a corpus clip (--clip, --data) or your own: --video, --script (or
    --script-file) and --prompt (a wav of the voice to speak in). Writes OUT
    (.mp4), and beside it .wav, .reasoning.txt and .json (conclusion, timings,
    retrieved footage and, for a corpus clip, its metrics); nothing is written
    when it fails.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with user_errors():
        # Every input is checked before torch or a model loads (seconds, not minutes).
        request, row = _checked_request(
            config, model, clip, data, video, script, script_file, prompt, react, library, out,
            seed, oracle or [],
        )  # fmt: skip
        parts = {"reasoner_dir": reasoner, "extractors_dir": extractors}
        with dub_stages(quiet=as_json) as stage:
            summary, result, files = _dub(
                config, model, library, parts, request, row, data, out, threads,
                evaluate, mos, stage,
            )  # fmt: skip
    if as_json:
        print_json({**result.to_json(), **summary, "files": files})
        return
    console = err_console()
    c = result.conclusion or dict.fromkeys(("scene_type", "gender", "age", "emotion"), "-")
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
    seed: int,
    oracles: list[str],
) -> tuple[DubRequest, dict[str, Any] | None]:
    """The request, every input checked (files, script, prompt, output path); no model."""
    from dubops.cli import checks

    checks.output_file(out, "--out", ".mp4")
    checked_model(model, library)
    request, row = _checked_clip(clip, data, video, script, script_file, prompt, react, oracles)
    request = request.model_copy(update={"seed": seed, "mp4": True})
    require_store(config, model)  # last: the inputs' own errors come first
    return request, row


def checked_model(model: str, library: Path | None) -> None:
    """A ``models:/`` URI that parses, or a bundle or run folder; a library that exists
    (file checks only: no model loads)."""
    from dubops.cli import checks
    from dubops.registry.loading import MODELS_SCHEME, parse_models_uri

    if model.startswith(MODELS_SCHEME):
        parse_models_uri(model)
    elif not (Path(model) / "stage.json").is_file():
        checks.input_dir(
            Path(model),
            "--model",
            "bundle.json",
            "give a bundle folder, a controlnet/graph run folder or models:/dubbing@champion",
        )
    if library is not None:
        checks.input_dir(library, "--library", "library.json", "build one: dubops library build")


def require_store(config, model: str) -> None:
    """A registry URI needs a store that exists (checked after the inputs' own errors)."""
    from dubops.registry.loading import MODELS_SCHEME, parse_models_uri

    if model.startswith(MODELS_SCHEME):
        _require_store(config, parse_models_uri(model)[0])


def _checked_clip(
    clip: str | None,
    data: Path,
    video: Path | None,
    script: str | None,
    script_file: Path | None,
    prompt: Path | None,
    react: str,
    oracles: list[str],
) -> tuple[DubRequest, dict[str, Any] | None]:
    """A corpus clip's request or the user's own, every file and line checked."""
    from dubops.cli import checks
    from dubops.inference import DubRequest
    from dubops.inference.corpus import corpus_request

    if react:
        checks.script_text(react, "--react")
    if clip is not None:
        given = [n for n, v in _own_clip(video, script, script_file, prompt) if v is not None]
        if given:
            raise InputError(f"give --clip, or --video --script --prompt, not both ({given})")
        request, row = corpus_request(checks.corpus_dir(data), clip, oracles)
        seconds = checks.video_file(request.video, f"--clip {clip}: its video")
        checks.script_fits(request.script, seconds, f"--clip {clip}: its script")
        checks.prompt_wav(request.prompt, f"--clip {clip}: its prompt")
        return request, row
    if oracles:
        raise InputError("--oracle needs a corpus clip (--clip): its ground truth is the oracle")
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
    return DubRequest(video=video, script=text, prompt=prompt, react=react), None


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
    parts: dict[str, Path | None],
    request: DubRequest,
    row: dict[str, Any] | None,
    data: Path,
    out: Path,
    threads: int,
    evaluate: bool,
    mos: bool,
    stage,
) -> tuple[dict[str, Any], Any, dict[str, str]]:
    """Load, dub, mux, score and write; the files appear at OUT only when all succeeded."""
    from dubops.cli.checks import staged_output

    stage("load")
    import torch

    from dubops.audio import write_wav
    from dubops.dub_outputs import reasoning_check, score_dubbed_clip, write_dub_outputs
    from dubops.inference.loading import load_pipeline

    torch.set_num_threads(threads)
    timings: dict[str, float] = {}
    began = time.perf_counter()
    pipeline, loaded = load_pipeline(config, model, library, **parts)
    try:
        timings["load"] = round(time.perf_counter() - began, 3)
        result = pipeline.dub(request, on_stage=stage)
        with staged_output(out) as staged:
            assert result.mp4 is not None
            staged.write_bytes(result.mp4)
            write_wav(staged.with_suffix(".wav"), result.wave, result.sample_rate)
            summary: dict = {"model": loaded, "clip": request.name}
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


@config_options()
def dub_command(
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="models:/dubbing@champion, a bundle folder, or a controlnet/graph run folder.",
        ),
    ],
    data: Annotated[Path, typer.Option("--data", "-d", help="Corpus folder.")] = Path("data/tiny"),
    reasoner: ReasonerOption = None,
    extractors: ExtractorsOption = None,
    library: Annotated[
        Path | None,
        typer.Option("--library", help="Footage library; required for a graph run folder."),
    ] = None,
    oracle: OracleOption = None,
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
    batch_size: Annotated[int, typer.Option(min=1, help="Clips per dub_many call.")] = 8,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 1,
    seed: Annotated[
        int,
        typer.Option(
            min=0, help="Sampler noise seed: dub again with others to average a score over."
        ),
    ] = 0,
    *,
    config: DubOpsConfig,
) -> None:
    """Dub every clip of corpus splits through the served path (then run `dubops eval`).

    Each clip is dubbed as a request would be: the reasoner's own conclusion and,
    for a graph model, the extractors' embedding of the video as the retrieval
    query. --oracle swaps one of them for the ground truth. A run folder without
    --reasoner dubs with no conclusion unless --oracle conclusion gives it.
    Writes OUT/<clip_id>.wav and .json (conclusion and its sources, footage,
    timings); finished clips are skipped, so a stopped run resumes.
    """
    with user_errors():
        import torch

        from dubops.cli.common import progress_bar
        from dubops.inference.corpus import check_oracles, dub_corpus, system_name
        from dubops.inference.loading import load_pipeline
        from dubops.speech.generator import Ablation

        chosen = check_oracles(oracle or [])
        named = Ablation.named(ablation)
        torch.set_num_threads(threads)
        pipeline, _ = load_pipeline(
            config, model, library, reasoner_dir=reasoner, extractors_dir=extractors
        )
        with pipeline, progress_bar(f"dubbing ({system_name(chosen)}, {ablation})") as update:
            paths = dub_corpus(
                pipeline,
                data,
                split or ["test_s1", "test_s2"],
                out,
                oracles=chosen,
                max_clips=max_clips,
                batch_size=batch_size,
                progress=update,
                ablation=named,
                seed=seed,
            )
        err_console().print(f"[bold green]dubbed[/] {len(paths)} clips -> {out}")


@config_options()
def speak_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="Finished controlnet run folder.")],
    script: Annotated[str, typer.Option("--script", help="What to say.")],
    prompt: Annotated[Path, typer.Option("--prompt", help="Timbre prompt wav (0.5 s or more).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output wav.")] = Path("speech.wav"),
    video: Annotated[
        Path | None, typer.Option("--video", help="Silent clip: sets the slot and the lips.")
    ] = None,
    seconds: Annotated[
        float | None, typer.Option("--seconds", help="Slot length (default: the video's).")
    ] = None,
    conclusion: Annotated[
        str | None,
        typer.Option(help="scene_type,gender,age,emotion e.g. monologue,female,adult,joy"),
    ] = None,
    nfe: Annotated[int | None, typer.Option(min=1, help="ODE steps.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Sampler noise seed.")] = 0,
    *,
    config: DubOpsConfig,
) -> None:
    """Quick check of a speech model alone: speak a script in a prompt's voice, fitted to a slot.

    No reasoner: the conclusion is the one you give (--conclusion), or none. Without
    --video the slot is --seconds of a blank video (the video condition dropped).
    """
    with user_errors():
        import numpy as np

        from dubops.cli import checks

        checks.output_file(out, "--out", ".wav")
        checks.input_dir(model, "--model", hint="give a finished controlnet run folder")
        text = checks.script_text(script, "--script")
        if video is not None:
            slot = checks.video_file(video, "--video")
            checks.script_fits(text, slot if seconds is None else seconds, "--script")
        elif seconds is not None:
            checks.script_fits(text, checks.slot_seconds(seconds, "--seconds"), "--script")
        else:
            raise InputError("give --video (the slot and the lips) or --seconds (the slot)")
        checks.prompt_wav(prompt, "--prompt")
        fields = {}
        if conclusion is not None:
            parts = [p.strip() for p in conclusion.split(",")]
            if len(parts) != 4:
                raise InputError(
                    "--conclusion needs four comma-separated values: scene_type,gender,age,emotion"
                )
            fields = dict(zip(("scene_type", "gender", "age", "emotion"), parts, strict=True))
        from dubops.audio import write_wav
        from dubops.inference import DubbingPipeline, DubRequest

        if video is None:  # a blank clip as long as the slot: the video branch learns nothing
            clip = {
                "video": np.zeros((max(1, round(seconds * 25)), 8, 8, 3), np.uint8),
                "fps": 25.0,
            }
        else:
            clip = {"video": video}
        request = DubRequest(
            **clip, script=text, prompt=prompt, target_seconds=seconds, nfe=nfe, seed=seed, **fields
        )
        with DubbingPipeline.from_parts(
            model, audio=config.audio, lip_align=config.speech.lip_align
        ) as pipeline:
            no_video = None
            if video is None:
                from dubops.speech.generator import Ablation

                no_video = Ablation(visual=False)
            result = pipeline.dub_many([request], ablation=no_video)[0]
        write_wav(out, result.wave, result.sample_rate)
        err_console().print(f"[bold green]wrote[/] {out} ({result.duration:.2f} s)")
