"""``dubops dub-video`` and ``dubops data scene``: a long video dubbed line by line.

Thin layers over :mod:`dubops.scenes`: the command checks every input (the
video, the subtitles against it, each voice) before a model loads, dubs the
lines with a progress bar, and writes the mp4, its track (``.wav``) and a
``.json`` of every line (reasoning, conclusion, footage, timings, cached or
not). Lines are kept in a cache folder by their inputs, so running the
command again with one line changed (``--segment 3.emotion=anger``, or an
edited subtitle) dubs only that line.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dubops.cli.common import JsonOption, err_console, print_json, progress_bar, user_errors
from dubops.cli.dubbing import ExtractorsOption, LibraryOption, ModelOption, ReasonerOption
from dubops.cli.options import config_options
from dubops.errors import InputError

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig
    from dubops.scenes.segments import Segment


@config_options(json=True)
def dub_video_command(
    video: Annotated[Path, typer.Argument(help="The silent video (mp4) to dub.")],
    subtitles: Annotated[
        Path,
        typer.Option(
            "--subtitles",
            help="Who says what, when: an .srt ('SPEAKER: line' cues) or a .json list of "
            "{start, end, speaker, text[, emotion, gender, age, scene_type, seed]}.",
        ),
    ],
    voices: Annotated[
        list[str] | None,
        typer.Option(
            "--voice",
            help="SPEAKER=PROMPT.wav: the voice each speaker is dubbed in (repeat per speaker).",
        ),
    ] = None,
    voices_dir: Annotated[
        Path | None,
        typer.Option(
            "--voices-dir",
            help="A folder of SPEAKER.wav prompts, one per speaker (with or instead of --voice).",
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="The dubbed video (.mp4).")] = Path(
        "out/scene.mp4"
    ),
    model: ModelOption = "models:/dubbing@champion",
    reasoner: ReasonerOption = None,
    extractors: ExtractorsOption = None,
    library: LibraryOption = None,
    segment: Annotated[
        list[str] | None,
        typer.Option(
            "--segment",
            help="N.FIELD=VALUE: change line N (1-based, in time order) for this run: text, "
            "speaker, seed, emotion, gender, age or scene_type. Repeatable; only changed lines "
            "are dubbed again.",
        ),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            "--cache",
            help="Folder of dubbed lines kept by their inputs (default: OUT's name + "
            "'.segments' beside it).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Sampler seed of lines without their own.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Lines dubbed per batch.")] = 8,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 1,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Dub a scene: each subtitle line in its speaker's voice, in its slot, into one mp4.

    Writes OUT (.mp4) and beside it OUT.wav (the track: the video's length, each
    line in its slot) and OUT.json (every line with its reasoning, conclusion,
    footage and timings). Re-run with --segment N.FIELD=VALUE, or an edited
    subtitle file, to re-dub single lines: the rest come from the cache.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with user_errors():
        from dubops.cli.dubbing import checked_model, require_store

        checked_model(model, library)
        given = [*(voices or []), *_voices_in(voices_dir)]
        lines, voice_files = _checked_inputs(video, subtitles, given, segment or [], out)
        require_store(config, model)
        folder = cache or out.with_name(out.stem + ".segments")
        summary = _dub(
            config, model, video, lines, voice_files, folder, out, seed, batch_size, threads,
            {"reasoner_dir": reasoner, "extractors_dir": extractors}, library, as_json,
        )  # fmt: skip
    if as_json:
        print_json(summary)
        return
    console = err_console()
    console.print(
        f"[bold green]dubbed[/] {len(lines)} lines -> {out} ({summary['video_seconds']:.2f} s): "
        f"{summary['dubbed']} dubbed, {summary['cached']} from the cache {folder}"
    )
    parts = ", ".join(f"{k} {v:.2f}" for k, v in summary["seconds"].items())
    console.print(f"seconds: {parts}; lines -> {out.with_suffix('.json')}")


def _checked_inputs(
    video: Path, subtitles: Path, voices: list[str], changes: list[str], out: Path
) -> tuple[list[Segment], dict[str, Path]]:
    """Every input checked against the others, before any model loads."""
    from dubops.cli import checks
    from dubops.scenes.segments import check_segments, read_segments, with_changes

    checks.output_file(out, "--out", ".mp4")
    seconds = _video_seconds(video)
    voice_files = parse_voices(voices)
    lines = with_changes(read_segments(subtitles), parse_changes(changes))
    check_segments(lines, seconds, voice_files, name=f"--subtitles {subtitles}")
    return lines, voice_files


def _video_seconds(video: Path) -> float:
    from dubops.cli import checks
    from dubops.video import probe_video

    checks.input_file(video, "VIDEO", "video")
    try:
        return probe_video(video).seconds
    except ValueError as exc:
        raise InputError(f"VIDEO {video}: not a readable video ({exc})") from None


def _voices_in(folder: Path | None) -> list[str]:
    """``SPEAKER=PATH`` for each ``SPEAKER.wav`` in ``folder``."""
    from dubops.cli import checks

    if folder is None:
        return []
    checks.input_dir(folder, "--voices-dir")
    found = [f"{path.stem}={path}" for path in sorted(folder.glob("*.wav"))]
    if not found:
        raise InputError(f"--voices-dir {folder}: no .wav files; put one SPEAKER.wav per speaker")
    return found


def parse_voices(values: list[str]) -> dict[str, Path]:
    """``SPEAKER=PROMPT.wav`` options as ``{speaker: path}``, each prompt checked."""
    from dubops.cli import checks

    voices: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise InputError(f"--voice {value!r}: write it as SPEAKER=PROMPT.wav")
        if name.strip() in voices:
            raise InputError(f"--voice {name.strip()}: given twice; give each speaker one voice")
        checks.prompt_wav(Path(path.strip()), f"--voice {name.strip()}")
        voices[name.strip()] = Path(path.strip())
    return voices


def parse_changes(values: list[str]) -> dict[int, dict[str, str]]:
    """``N.FIELD=VALUE`` options as ``{N: {FIELD: VALUE}}``."""
    changes: dict[int, dict[str, str]] = {}
    for value in values:
        target, sep, new = value.partition("=")
        number, dot, key = target.partition(".")
        if not sep or not dot or not number.strip().isdigit() or not key.strip():
            raise InputError(
                f"--segment {value!r}: write it as N.FIELD=VALUE, e.g. --segment 3.emotion=anger"
            )
        changes.setdefault(int(number), {})[key.strip()] = new
    return changes


def _dub(
    config, model, video, lines, voices, folder, out, seed, batch_size, threads, parts, library,
    quiet,
) -> dict:  # fmt: skip
    """Load, dub the lines, assemble, mux and write; files appear only when all succeeded."""
    import torch

    from dubops.cli.checks import staged_output
    from dubops.fileio import write_json
    from dubops.inference.loading import load_pipeline
    from dubops.inference.mux import mux_dub
    from dubops.scenes.scene_dubbing import dub_scene, model_fingerprint
    from dubops.scenes.segment_cache import SegmentCache

    torch.set_num_threads(threads)
    began = time.perf_counter()
    pipeline, loaded = load_pipeline(config, model, library, **parts)
    load_seconds = round(time.perf_counter() - began, 3)
    folders = [parts["reasoner_dir"], parts["extractors_dir"], library]
    try:
        with progress_bar("dubbing lines", quiet=quiet) as update:
            finished: set[int] = set()

            def progress(number: int, state: str) -> None:
                if state in ("cached", "done"):
                    finished.add(number)
                update(len(finished), len(lines))

            scene = dub_scene(
                pipeline, video, lines, voices, SegmentCache(folder),
                model_fingerprint(model, loaded, folders), seed, batch_size, progress,
            )  # fmt: skip
    finally:
        pipeline.close()
    with staged_output(out) as staged:
        tick = time.perf_counter()
        mux_dub(video, scene.track, scene.sample_rate, staged)
        seconds = scene.seconds | {
            "mux": round(time.perf_counter() - tick, 3),
            "load": load_seconds,
        }
        summary = scene.to_json() | {
            "model": loaded, "video": str(video), "out": str(out), "cache": str(folder),
            "seconds": seconds,
        }  # fmt: skip
        write_json(staged.with_suffix(".json"), summary)
    return summary


def scene_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the scene to.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Corpus to take clips from.")] = Path(
        "data/tiny"
    ),
    speakers: Annotated[int, typer.Option(min=1, help="How many speakers take turns.")] = 3,
    seconds: Annotated[float, typer.Option(min=1.0, help="The scene's length.")] = 60.0,
    split: Annotated[
        list[str] | None,
        typer.Option(
            "--split",
            help="Corpus splits to take clips from (default: test_s1 and test_s2; test_s1 alone "
            "keeps to voices the model trained on).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """String held-out corpus clips of several speakers into one scene to dub.

    Writes OUT/scene.mp4 (silent), OUT/scene.srt, OUT/voices/SPEAKER.wav (each
    speaker's timbre prompt), OUT/reference.wav (the clips' own speech) and
    OUT/scene.json; then dub it with the printed `dubops dub-video` line.
    """
    from dubops.cli import checks

    with user_errors():
        checks.corpus_dir(data)
        checks.output_dir(out, "--out")
        from dubops.scenes.synthetic_scene import make_scene

        files = make_scene(data, out, speakers, seconds, tuple(split or ("test_s1", "test_s2")))
    voices_dir = files.video.parent / "voices"
    command = (
        f"dubops dub-video {files.video} --subtitles {files.subtitles} --voices-dir {voices_dir}"
    )
    if as_json:
        voices = {k: str(v) for k, v in files.voices.items()}
        print_json(
            {"video": str(files.video), "subtitles": str(files.subtitles), "voices": voices,
             "command": command}
        )  # fmt: skip
        return
    err_console().print(f"[green]scene ready[/] {out}\n{command}")
