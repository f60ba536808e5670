"""``dubops train reasoner-sft|reasoner-mpo`` and ``dubops reason``: the reasoner's CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dubops.cli.common import JsonOption, err_console, print_json, tracked_run, user_errors
from dubops.cli.options import config_options
from dubops.cli.train import DataOption, MinutesOption, MlflowOption, ResumeOption
from dubops.errors import InputError

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig

OutOption = Annotated[Path, typer.Option("--out", "-o", help="Run folder.")]


def _report(result: Any, as_json: bool) -> None:
    from dataclasses import asdict

    if as_json:
        print_json(asdict(result))
        return
    v = result.validation
    err_console().print(
        f"[bold green]{result.stage}[/] {result.steps} steps in {result.minutes} min; validation: "
        f"format {v.get('format_validity', float('nan')):.3f}, "
        f"scene type {v.get('scene_type_accuracy', float('nan')):.3f}, "
        f"gender {v.get('gender_accuracy', float('nan')):.3f}, "
        f"age {v.get('age_accuracy', float('nan')):.3f}, "
        f"emotion {v.get('emotion_accuracy', float('nan')):.3f} -> {result.out_dir}"
    )


@config_options(json=True)
def reasoner_sft(
    data: DataOption = Path("data/tiny"),
    out: OutOption = Path("outputs/reasoner_sft"),
    resume: ResumeOption = False,
    max_minutes: MinutesOption = None,
    mlflow: MlflowOption = True,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Stage 1.1: chain-of-thought SFT of the reasoner (TRL SFTTrainer, answer-only loss).

    Tiny preset: trains a tokenizer, builds a random LLaVA, warms its vision
    tower up on the clip labels, then SFT. Base: LoRA on reasoning.pretrained_path.
    """
    with user_errors():
        from dubops.reasoning.sft import train_sft

        with tracked_run("reasoner_sft", config, data, mlflow) as tracker:
            result = train_sft(config, data, out, resume, max_minutes, tracker)
    _report(result, as_json)


@config_options(json=True)
def reasoner_mpo(
    data: DataOption = Path("data/tiny"),
    sft: Annotated[
        Path, typer.Option("--sft", help="Finished reasoner-sft run folder (policy and reference).")
    ] = Path("outputs/reasoner_sft"),
    out: OutOption = Path("outputs/reasoner_mpo"),
    resume: ResumeOption = False,
    max_minutes: MinutesOption = None,
    mlflow: MlflowOption = True,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Stage 1.2: mixed preference optimisation (TRL DPO: sigmoid + bco_pair + sft, plus
    the format and accuracy terms) from the SFT model, against a frozen copy of it."""
    with user_errors():
        from dubops.reasoning.mpo import train_mpo

        with tracked_run("reasoner_mpo", config, data, mlflow) as tracker:
            result = train_mpo(config, data, sft, out, resume, max_minutes, tracker)
    _report(result, as_json)


def reason_command(
    model: Annotated[
        Path | None, typer.Option("--model", "-m", help="Trained reasoner folder.")
    ] = None,
    data: DataOption = Path("data/tiny"),
    split: Annotated[
        list[str] | None, typer.Option("--split", help="Splits (default: test_s1 test_s2).")
    ] = None,
    video: Annotated[
        Path | None, typer.Option("--video", help="One clip instead of a corpus.", exists=True)
    ] = None,
    script: Annotated[str | None, typer.Option("--script", help="The clip's script.")] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="majority: answer every clip with the training split's commonest labels."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="JSONL of answers (for dubops eval --reasoning)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Clips per generate call.")] = 8,
    max_clips: Annotated[int | None, typer.Option(min=1, help="Only the first N clips.")] = None,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 1,
    as_json: JsonOption = False,
) -> None:
    """Reason about one clip (--video --script) or every clip of corpus splits.

    Writes one JSON line per clip: clip_id, text, the parsed conclusion (or the
    parse error) and latency; score it with `dubops eval --ref DATA --reasoning FILE`.
    """
    with user_errors():
        records = _reason(
            model, data, split, video, script, baseline, batch_size, max_clips, threads
        )
        if out is not None:
            from dubops.fileio import atomic_path

            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out) as tmp:
                tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    if as_json:
        print_json(
            records
            if video is not None or out is None
            else {"clips": len(records), "out": str(out)}
        )
        return
    console = err_console()
    if video is not None:
        console.print(records[0]["text"])
    valid = sum(r["parse_ok"] for r in records)
    console.print(
        f"[bold green]reasoned[/] {len(records)} clip(s), {valid} well-formed"
        + (f" -> {out}" if out is not None else "")
    )


def _reason(model, data, split, video, script, baseline, batch_size, max_clips, threads):
    import torch

    from dubops.reasoning.baselines import majority_answers
    from dubops.reasoning.inference import Reasoner

    torch.set_num_threads(threads)
    if video is not None:
        if script is None:
            raise InputError("--video needs --script (the line the clip's speaker says)")
        if model is None:
            raise InputError("--video needs --model (a trained reasoner folder)")
        reasoner = Reasoner.from_dir(model)
        result = reasoner.reason([video], [script])[0]
        return [_record(video.stem, result)]
    from dubops.data.datasets import load_manifest

    rows = load_manifest(data, split or ["test_s1", "test_s2"]).reset_index(drop=True)
    if max_clips is not None:
        rows = rows.iloc[:max_clips]
    if baseline is not None:
        return majority_answers(data, rows) if baseline == "majority" else _bad_baseline(baseline)
    if model is None:
        raise InputError("pass --model (a trained reasoner folder) or --baseline majority")
    reasoner = Reasoner.from_dir(model)
    from dubops.cli.common import progress_bar

    records = []
    with progress_bar("reasoning") as update:
        for start in range(0, len(rows), batch_size):
            part = rows.iloc[start : start + batch_size]
            paths = [Path(data) / p for p in part.video_path]
            results = reasoner.reason(paths, list(part.script), batch_size=batch_size)
            records += [_record(c, r) for c, r in zip(part.clip_id, results, strict=True)]
            update(len(records), len(rows))
    return records


def _bad_baseline(name: str):
    raise InputError(f"--baseline {name!r} is unknown; the one reasoning baseline is 'majority'")


def _record(clip_id: str, result: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "clip_id": clip_id,
        "text": result.text,
        "parse_ok": result.parse_ok,
        "conclusion": asdict(result.conclusion) if result.conclusion else None,
        "error": result.error,
        "latency_s": round(result.latency, 4),
    }
