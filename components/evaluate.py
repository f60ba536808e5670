"""The ``evaluate`` step: dub and reason about the test clips, score them and the baselines.

The graph model dubs the evaluation clips (:func:`dubops.speech.corpus_dubbing.dub_corpus`,
as ``dubops dub``), the reasoner answers them (as ``dubops reason``), and
:func:`dubops.evaluation.session.run_evaluation` scores the dubbed speech beside the
mean-mel and shuffled baselines (as ``dubops eval``); the answers and the
majority-class answers are scored with :mod:`dubops.evaluation.reasoning`. The flat
metrics use the registry's names: the speech metrics of the ``overall`` scope under
their report keys, the reasoning metrics prefixed ``reasoner_``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from dubops.components.runtime import StepContext, StepResult, run_step

MODEL = "model"  # the system name of the pipeline's model in the evaluation
SPEECH_BASELINES = ("mean-mel", "shuffled")
REASONING_BASELINE = "majority"


def speech_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The ``overall`` scope of one system's summary, flat, finite values only."""
    from dubops.evaluation.report import METRICS

    overall = summary.get("overall", {})
    out = {}
    for key, _, _ in METRICS:
        value = overall.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            out[key] = float(value)
    return out


def reasoning_metrics(scores: dict[str, Any]) -> dict[str, float]:
    """Reasoning scores flat and prefixed ``reasoner_`` (per-class recall included)."""
    out = {}
    for key, value in scores.items():
        if key == "clips" or isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[f"reasoner_{key}"] = float(value)
        elif key == "scene_type_recall":
            out.update({f"reasoner_scene_type_recall_{k}": float(v) for k, v in value.items()})
    return out


def _answer(ctx: StepContext, rows: Any, out: Path) -> tuple[Path, Path]:
    """The reasoner's answers and the majority-class answers as JSONL."""
    from dubops.fileio import atomic_path
    from dubops.reasoning.baselines import majority_answers
    from dubops.reasoning.inference import Reasoner

    settings = ctx.config.pipeline.evaluate
    reasoner = Reasoner.from_dir(ctx.input("reasoner"))
    records = []
    for start in range(0, len(rows), settings.reason_batch_size):
        part = rows.iloc[start : start + settings.reason_batch_size]
        paths = [ctx.data_dir / p for p in part.video_path]
        results = reasoner.reason(
            paths,
            list(part.script),
            batch_size=settings.reason_batch_size,
            max_new_tokens=ctx.config.reasoning.max_new_tokens,
        )
        records += [
            {"clip_id": c, "text": r.text} for c, r in zip(part.clip_id, results, strict=True)
        ]
    files = (out / f"{MODEL}.jsonl", out / f"{REASONING_BASELINE}.jsonl")
    for path, lines in zip(files, (records, majority_answers(ctx.data_dir, rows)), strict=True):
        with atomic_path(path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return files


def _dub(ctx: StepContext, clips: Any, out: Path) -> Path:
    from dubops.speech.corpus_dubbing import dub_corpus
    from dubops.speech.generator import SpeechGenerator

    settings = ctx.config.pipeline.evaluate
    generator = SpeechGenerator.from_dir(
        ctx.input("graph"),
        ctx.config.audio,
        library=ctx.input("library"),
        backend=ctx.config.library.backend,
    )
    folder = out / MODEL
    dub_corpus(generator, ctx.data_dir, settings.splits, folder, max_clips=settings.max_clips)
    missing = [c for c in clips.clip_id if not (folder / f"{c}.wav").is_file()]
    if missing:
        raise RuntimeError(f"dubbing left {len(missing)} evaluation clips out, e.g. {missing[:3]}")
    return folder


def _evaluate(ctx: StepContext) -> StepResult:
    import pandas as pd
    import torch
    from dubops.components.report import evaluation_html

    from dubops.data.layout import CorpusLayout
    from dubops.evaluation.reasoning import read_reasoning_jsonl, score_reasoning
    from dubops.evaluation.runner import select_clips
    from dubops.evaluation.session import EvalOptions, run_evaluation
    from dubops.fileio import atomic_path, write_json

    settings = ctx.config.pipeline.evaluate
    torch.set_num_threads(settings.torch_threads)
    splits = tuple(settings.splits)
    clips = select_clips(ctx.data_dir, splits, settings.max_clips)
    dubbed = _dub(ctx, clips, ctx.out_dir / "dubbed")
    answers = _answer(ctx, clips, ctx.out_dir / "reasoning")
    options = EvalOptions(
        splits=splits,
        asr=settings.asr,
        mos=settings.mos,
        max_clips=settings.max_clips,
        workers=settings.workers,
    )
    result = run_evaluation(
        ctx.data_dir,
        ctx.config,
        preds=[dubbed],
        baselines=list(SPEECH_BASELINES),
        options=options,
        out_dir=ctx.out_dir / "eval",
    )
    manifest = pd.read_parquet(CorpusLayout(ctx.data_dir).manifest)
    rows = manifest[manifest["clip_id"].isin(set(clips["clip_id"]))]
    reasoning = {path.stem: score_reasoning(read_reasoning_jsonl(path), rows) for path in answers}
    metrics = speech_metrics(result["systems"][MODEL]) | reasoning_metrics(reasoning[MODEL])
    baselines = {name: speech_metrics(result["systems"][name]) for name in SPEECH_BASELINES}
    # The majority baseline writes its answers from a template, so its format validity is
    # 1.0 by construction: a bar a first model could only tie, never beat. The gate compares
    # the reasoner's accuracies with it, not its format.
    majority = reasoning_metrics(reasoning[REASONING_BASELINE])
    majority.pop("reasoner_format_validity", None)
    baselines[REASONING_BASELINE] = majority
    summary = {
        "metrics": metrics,
        "baselines": baselines,
        "clips": len(clips),
        "splits": list(splits),
        "report": result["report"],
        "reasoning": reasoning,
    }
    write_json(ctx.out_dir / "evaluation.json", summary)
    with atomic_path(ctx.out_dir / "report.html") as tmp:
        tmp.write_text(evaluation_html(metrics, baselines, len(clips), list(splits)))
    if ctx.tracker is not None:
        for item in (ctx.out_dir / "eval").iterdir():
            if item.name != "baselines":  # the baselines' wavs: rebuilt from the corpus
                ctx.tracker.log_artifact(
                    item, "evaluation" if item.is_file() else f"evaluation/{item.name}"
                )
        ctx.tracker.log_artifact(ctx.out_dir / "reasoning", "reasoning")
        ctx.tracker.log_artifact(ctx.out_dir / "report.html")
        ctx.tracker.log_dict(baselines, "baselines.json")
    return StepResult(
        exports={"report": "report.html", "evaluation": "evaluation.json"}, metrics=metrics
    )


def run_evaluate(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    corpus: Any,
    reasoner: Any,
    graph: Any,
    library: Any,
    metrics: Any,
    report: Any,
    evaluation: Any,
) -> None:
    run_step(
        "evaluate",
        config_json=config_json,
        store_dir=store_dir,
        parent_run_id=parent_run_id,
        body=_evaluate,
        inputs={"corpus": corpus, "reasoner": reasoner, "graph": graph, "library": library},
        outputs={"metrics": metrics, "report": report, "evaluation": evaluation},
        metrics_to_parent=True,
    )
