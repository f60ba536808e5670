"""``dubops library``: build, query and evaluate the Reference Footage Library (Feast, Milvus)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dubops.cli.common import err_console, print_json, staged_progress, user_errors
from dubops.cli.options import config_options

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig

app = typer.Typer(help="Build and query the Reference Footage Library.", no_args_is_help=True)

LibraryOption = Annotated[
    Path, typer.Option("--library", "-l", help="Library folder (from `dubops library build`).")
]


class BackendChoice(enum.StrEnum):
    numpy = "numpy"
    milvus = "milvus"
    feast = "feast"


CheckExtractorsOption = Annotated[
    Path | None,
    typer.Option(
        "--extractors", "-e", help="Trained extractors: refuse a library built from older ones."
    ),
]
BackendOption = Annotated[
    BackendChoice | None,
    typer.Option(help="Search backend (default: library.backend of the config)."),
]


@app.command()
@config_options(json=True)
def build(
    data: Annotated[Path, typer.Option("--data", "-d", help="Corpus folder (manifest.parquet).")],
    extractors: Annotated[
        Path,
        typer.Option("--extractors", "-e", help="Trained extractors (`dubops train extractors`)."),
    ] = Path("outputs/extractors"),
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Library folder to write: new, empty, or a library built before (replaced); "
            "any other folder is refused.",
        ),
    ] = Path("outputs/library"),
    force: Annotated[bool, typer.Option(help="Rebuild even when nothing changed.")] = False,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Extract every clip's emotion vectors, write the Parquet, apply and materialise (Milvus).

    The library version is the extractor versions + the manifest hash + the build
    settings: an unchanged library is left as it is.
    """
    with user_errors():
        from dubops.cli.checks import corpus_dir, input_dir, output_dir

        corpus_dir(data)
        input_dir(extractors, "--extractors", hint="train them: dubops train extractors")
        output_dir(out, "--out")
        from dubops.feature_store.layout import LibraryLayout

        LibraryLayout(out).check_replaceable("--out")
    from dubops.feature_store.build import build_library

    with user_errors(), staged_progress(quiet=as_json) as update:
        report = build_library(
            config, data, out, extractors_dir=extractors, progress=update, force=force
        )
    if as_json:
        print_json(
            {
                "path": str(report.path),
                "version": report.version,
                "built": report.built,
                "footage": report.footage,
                "clips": report.clips,
                "seconds": round(report.seconds, 2),
                "stage_seconds": report.stage_seconds,
            }
        )
        return
    console = err_console()
    if not report.built:
        console.print(
            f"[green]up to date[/] {report.path} (version {report.version}): nothing to do"
        )
        return
    console.print(
        f"[green]library built[/] {report.path} (version {report.version}): "
        f"{report.footage} footage clips of {report.clips}, {report.seconds:.1f} s"
    )


@app.command()
@config_options(json=True)
def query(
    clip: Annotated[str, typer.Option("--clip", help="clip_id of a corpus clip to query with.")],
    library: Annotated[
        Path | None,
        typer.Option(
            "--library",
            "-l",
            help="Library folder (default: the newest one `dubops pipeline run` or "
            "`make demo` built, else outputs/library).",
        ),
    ] = None,
    k: Annotated[
        int | None, typer.Option("--k", help="Hits per modality (default library.k).")
    ] = None,
    backend: BackendOption = None,
    speaker_specific: Annotated[
        bool, typer.Option("--speaker-specific", help="Only the clip's own speaker's footage.")
    ] = False,
    extractors: CheckExtractorsOption = None,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Print what a clip retrieves per modality (its own clip is always excluded)."""
    with user_errors():
        library = library or default_library(Path(config.pipeline.store))
        from dubops.cli.checks import input_dir

        input_dir(library, "--library", "library.json", "build one: dubops library build")
        from dubops.feature_store.retrieval import FootageLibrary

        lib = FootageLibrary.open(
            library,
            backend.value if backend else config.library.backend,
            milvus_uri=config.library.milvus_uri,
            extractors_dir=extractors,
        )
        with lib:
            vectors = lib.clip_vectors([clip])
            (labels,) = lib.clip_labels([clip])
            result = lib.query(
                vectors["scene"][0],
                vectors["face"][0],
                vectors["text"][0],
                k=k or config.library.k,
                exclude_clips=[clip],
                speakers={labels["speaker"]} if speaker_specific else None,
            )
    if as_json:
        print_json({"query": labels, "hits": result.to_json(include_vectors=False)})
        return
    from rich import box
    from rich.table import Table

    title = f"{clip} ({labels['speaker']}, {labels['emotion']}, {labels['split']})"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("modality", "rank", "clip_id", "similarity", "emotion", "speaker", "audio"):
        table.add_column(column)
    for modality, hits in result.modalities.items():
        for rank, (cid, sim, emo, spk, path) in enumerate(
            zip(
                hits.clip_ids,
                hits.similarities,
                hits.emotions,
                hits.speakers,
                hits.audio_paths,
                strict=True,
            ),
            start=1,
        ):
            mark = "[green]" if emo == labels["emotion"] else ""
            table.add_row(modality, str(rank), cid, f"{sim:.3f}", f"{mark}{emo}", spk, path)
    err_console().print(table)


@app.command()
@config_options(json=True)
def evaluate(
    library: LibraryOption = Path("outputs/library"),
    data: Annotated[
        Path | None,
        typer.Option("--data", "-d", help="Corpus folder: checks the library was built from it."),
    ] = None,
    backend: BackendOption = None,
    max_k: Annotated[int, typer.Option("--max-k", help="Report K = 1..max_k.")] = 5,
    extractors: CheckExtractorsOption = None,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Retrieval precision@K (hit shares the query's emotion) per modality and fused,
    speaker-agnostic vs speaker-specific, query splits against the footage."""
    from dubops.feature_store.precision import evaluate_precision, precision_table
    from dubops.feature_store.retrieval import FootageLibrary

    with user_errors():
        lib = FootageLibrary.open(
            library,
            backend.value if backend else config.library.backend,
            milvus_uri=config.library.milvus_uri,
            extractors_dir=extractors,
        )
        if data is not None:
            _check_corpus(lib, data)
        with lib:
            frame = evaluate_precision(
                lib, ks=range(1, max_k + 1), query_splits=config.library.query_splits
            )
    if as_json:
        print_json({"library": lib.info.version, "rows": frame.to_dict(orient="records")})
        return
    from rich import box
    from rich.table import Table

    pivot = precision_table(frame).rename(columns={"queries": "n"})
    table = Table(
        title=f"retrieval precision@K ({lib.info.size} footage clips)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    for column in pivot.columns:
        table.add_column(str(column), no_wrap=True, min_width=len(str(column)))
    for row in pivot.itertuples(index=False):
        table.add_row(*[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row])
    err_console().print(table)


def _check_corpus(lib, data: Path) -> None:
    from dubops.data.layout import CorpusLayout, manifest_hash
    from dubops.errors import InputError
    from dubops.feature_store.layout import BUILD_HINT, LibraryError

    manifest = CorpusLayout(data).manifest
    if not manifest.is_file():
        raise InputError(f"--data: no manifest at {manifest}")
    if manifest_hash(manifest) != lib.info.manifest_hash:
        raise LibraryError(
            f"library {lib.layout.root} was built from another corpus than {data}; "
            + BUILD_HINT.format(path=lib.layout.root)
        )


# Where `make demo` (Makefile DEMO_OUT) and `dubops pipeline run` keep their step outputs.
_DEMO_STORE = Path("outputs/demo/pipeline")
_BUILT_LIBRARY = Path("outputs/library")


def default_library(store: Path) -> Path:
    """The library a user most likely means: the newest a pipeline run built, else ours.

    A pipeline keeps each step's outputs in ``<store>/build_library/<cache key>/library``
    (``make demo`` uses ``outputs/demo/pipeline`` as its store); ``dubops library
    build`` writes ``outputs/library``.

    Raises:
        InputError: no library anywhere; the message names --library and those places.
    """
    from dubops.errors import InputError

    found = [
        info.parent
        for root in dict.fromkeys((store, _DEMO_STORE))
        for info in root.glob("build_library/*/library/library.json")
    ]
    if (_BUILT_LIBRARY / "library.json").is_file():
        found.append(_BUILT_LIBRARY)
    if not found:
        raise InputError(
            f"--library: no footage library found (looked in {_BUILT_LIBRARY}, "
            f"{store}/build_library/*/library and {_DEMO_STORE}/build_library/*/library, "
            "where `make demo` puts it); pass --library DIR or run `dubops library build`"
        )
    newest = max(found, key=lambda p: (p / "library.json").stat().st_mtime)
    err_console().print(f"library {newest} (the newest built; --library to choose)")
    return newest
