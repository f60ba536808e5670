"""``dubops eval``: score generated speech (and baselines) with the papers' metrics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dubops.cli.common import err_console, off_switch, print_json, progress_bar, user_errors
from dubops.cli.options import config_options

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig


@config_options(json=True)
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
    mos: Annotated[bool, off_switch("--no-mos", "Skip DNSMOS (the slowest metric).")] = True,
    reasoning: Annotated[
        Path | None, typer.Option(help="JSONL of reasoner outputs to score as well.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")] = Path("outputs/eval"),
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 2,
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
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Score --pred folders and --baseline systems on the test splits; write JSON + HTML."""
    corpus = ref.parent if ref.suffix == ".parquet" else ref
    with user_errors():
        _check_inputs(corpus, pred or [], baseline or [], reasoning, syncnet, out, workers, config)
        from dubops.evaluation.session import EvalOptions, run_evaluation

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


def _check_inputs(
    corpus: Path,
    preds: list[Path],
    baselines: list[str],
    reasoning: Path | None,
    syncnet: Path | None,
    out: Path,
    workers: int,
    config,
) -> None:
    """Every input before a worker starts: folders, wavs at the scoring rate, the report path."""
    from dubops.cli import checks
    from dubops.errors import InputError

    if not preds and not baselines and reasoning is None:
        raise InputError(
            "nothing to score: pass --pred DIR, --baseline NAME and/or --reasoning FILE"
        )
    checks.input_dir(corpus, "--ref", "manifest.parquet", "give the corpus folder the dubs are of")
    rate = config.audio.sample_rate
    for folder in preds:
        checks.input_dir(folder, "--pred", hint="give a folder of <clip_id>.wav")
        wavs = sorted(folder.glob("*.wav"))
        if not wavs:
            raise InputError(f"--pred {folder}: holds no .wav; write one <clip_id>.wav per clip")
        # Headers only (milliseconds): a wrong rate would score every clip wrongly.
        for wav in wavs:
            checks.wav_rate(wav, rate, "--pred")
    if reasoning is not None:
        checks.input_file(reasoning, "--reasoning", "JSONL file")
    if syncnet is not None:
        checks.input_file(syncnet, "--syncnet", "weights file")
    checks.output_dir(out, "--out")
