"""``dubops eval``: score generated speech (and baselines) with the papers' metrics."""

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
    progress_bar,
    user_errors,
)


def evaluate_command(
    ref: Annotated[
        Path,
        typer.Option("--ref", help="Corpus folder (or its manifest.parquet) to score against."),
    ],
    pred: Annotated[
        list[Path] | None,
        typer.Option("--pred", help="Folder of <clip_id>.wav to score (repeatable)."),
    ] = None,
    baseline: Annotated[
        list[str] | None,
        typer.Option(
            "--baseline",
            help="ground-truth, copy-synthesis, shuffled, mean-mel or all (repeatable).",
        ),
    ] = None,
    split: Annotated[
        list[str] | None,
        typer.Option("--split", help="Splits to score (default: test_s1 test_s2)."),
    ] = None,
    asr: Annotated[
        str, typer.Option(help="sphinx (corpus LM), sphinx-general, or whisper:/local/path.")
    ] = "sphinx",
    mos: Annotated[bool, typer.Option(help="Compute DNSMOS (slowest metric).")] = True,
    reasoning: Annotated[
        Path | None, typer.Option(help="JSONL of reasoner outputs to score as well.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")] = Path("outputs/eval"),
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    mouth: Annotated[
        str,
        typer.Option(
            help="Mouth tracking for the LSE proxy: cartoon (drawn mouths) or face-mesh "
            "(filmed faces, MediaPipe)."
        ),
    ] = "cartoon",
    syncnet: Annotated[
        Path | None,
        typer.Option(
            help="Local SyncNet weights (syncnet_v2.model): exact LSE-D / LSE-C as well.",
            dir_okay=False,
        ),
    ] = None,
    max_clips: Annotated[
        int | None, typer.Option(help="Score only the first N clips of the splits.", min=1)
    ] = None,
    mlflow: Annotated[
        bool, typer.Option("--mlflow", help="Log the report as an MLflow run.")
    ] = False,
    preset: PresetOption = "tiny",
    config_file: ConfigFileOption = None,
    overrides: SetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score --pred folders and --baseline systems on the test splits; write JSON + HTML."""
    config = load(preset, config_file, overrides)
    from dubops.evaluation.session import EvalOptions, run_evaluation

    corpus = ref.parent if ref.suffix == ".parquet" else ref
    with user_errors():
        if not pred and not baseline and reasoning is None:
            raise ValueError(
                "nothing to score: pass --pred DIR, --baseline NAME and/or --reasoning FILE"
            )
        options = EvalOptions(
            splits=tuple(split or ("test_s1", "test_s2")),
            asr=asr,
            mos=mos,
            mouth=mouth,
            syncnet=syncnet,
            max_clips=max_clips,
            workers=workers,
        )
        with progress_bar("scoring", quiet=as_json) as update:
            result = run_evaluation(
                corpus,
                config,
                preds=list(pred or []),
                baselines=list(baseline or []),
                options=options,
                reasoning_jsonl=reasoning,
                out_dir=out,
                log_mlflow=mlflow,
                progress=update,
            )
    if as_json:
        print_json(result)
        return
    from dubops.evaluation.report import metric_table, reasoning_table

    console = err_console()
    if result["systems"]:
        table = metric_table(result["systems"], "overall")
        console.print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    if "reasoning" in result:
        scores = reasoning_table(result["reasoning"])
        console.print(scores.to_string(float_format=lambda v: f"{v:.3f}"))
    console.print(f"[green]report[/] {result['report']}")
