"""``dubops data``: synthesize, import, validate and report on dubbing corpora."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dubops.cli.checks import corpus_dir, input_dir, output_dir
from dubops.cli.common import (
    JsonOption,
    err_console,
    print_json,
    progress_bar,
    staged_progress,
    user_errors,
)
from dubops.cli.options import config_options

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig

app = typer.Typer(help="Build, import, validate and measure dubbing corpora.", no_args_is_help=True)

CorpusDir = Annotated[Path, typer.Argument(help="Corpus folder (holds manifest.parquet).")]


@app.command()
@config_options(
    json=True,
    set_from={"clips": "synth.clips", "seed": "synth.seed", "workers": "synth.workers"},
)
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the corpus to.")],
    clips: Annotated[int | None, typer.Option(help="Number of clips (synth.clips).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (synth.seed).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (synth.workers).", min=1)
    ] = None,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Generate the synthetic dubbing corpus (espeak-ng speech, cartoon video, CoT).

    Deterministic from its seed; an interrupted run resumes, and an unchanged
    corpus is reused instead of rebuilt.
    """
    del clips, seed, workers  # already in config (set_from)
    with user_errors():
        output_dir(out, "--out")
    from dubops.data.synthetic import generate_corpus

    with user_errors(), progress_bar("synthesizing clips", quiet=as_json) as update:
        info = generate_corpus(config, out, progress=update)
    if as_json:
        print_json({k: v for k, v in info.items() if k != "config"})
        return
    console = err_console()
    state = "reused (unchanged)" if info["reused"] else f"{info['clips_per_second']} clips/s"
    console.print(
        f"[green]corpus ready[/] {out}: {info['clips']} clips, "
        f"{info['audio_hours'] * 60:.1f} min of speech, {state}"
    )
    console.print(f"splits: {info['counts']['split']}")


@app.command()
def validate(corpus: CorpusDir, as_json: JsonOption = False) -> None:
    """Check a corpus with the Great Expectations suite; exit 1 listing failures."""
    from dubops.data.validation import format_report, validate_corpus

    with user_errors():
        report = validate_corpus(corpus)
    if as_json:
        print_json(report.to_dict())
    else:
        err_console().print(format_report(report))
    if not report.ok:
        raise typer.Exit(1)


@app.command()
@config_options(json=True)
def report(
    corpus: CorpusDir,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Measure how learnable the corpus is: speakers, emotions, lip-sync, scenes, WER."""
    with user_errors():
        corpus_dir(corpus, "CORPUS")
    from dubops.data.report import build_report, format_report

    with user_errors(), staged_progress(quiet=as_json) as update:
        figures = build_report(corpus, config.report, progress=update)
    if as_json:
        print_json(figures)
    else:
        err_console().print(format_report(figures))


class ImportFormat(enum.StrEnum):
    v2c = "v2c"
    grid = "grid"


@app.command("import")
@config_options(json=True)
def import_corpus(
    fmt: Annotated[ImportFormat, typer.Argument(help="Published layout to read: v2c or grid.")],
    src: Annotated[Path, typer.Argument(help="Folder holding the published corpus.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write our corpus to.")],
    skip_missing: Annotated[
        bool,
        typer.Option(
            "--skip-missing", help="Skip clips whose wav or video is missing instead of failing."
        ),
    ] = False,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Read V2C-Animation or GRID into the DubOps manifest (24 kHz wavs, mp4s)."""
    with user_errors():
        input_dir(src, "SRC", hint=f"give the folder of the published {fmt.value} corpus")
        output_dir(out, "--out")
    if fmt is ImportFormat.v2c:
        from dubops.data.importers.v2c import import_v2c as importer
    else:
        from dubops.data.importers.grid import import_grid as importer

    with user_errors(), progress_bar(f"importing {fmt.value}", quiet=as_json) as update:
        result = importer(
            src,
            out,
            audio=config.audio,
            video=config.video,
            skip_missing=skip_missing,
            progress=update,
        )
    summary = result if isinstance(result, dict) else {"manifest": str(result)}
    if as_json:
        print_json(summary)
    else:
        err_console().print(f"[green]imported[/] {fmt.value} into {out}: {summary}")
