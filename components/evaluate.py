"""The ``evaluate`` step: dub the test clips as the model will be served, score them.

The reasoner, the graph model, the extractors and the library make one
:class:`dubops.inference.DubbingPipeline`, the object every server wraps. It dubs
the evaluation clips through the served path (the reasoner's own conclusions,
the extractors' own embeddings as retrieval queries; as ``dubops dub``) and
through the configured oracle rows (ground truth in place of one decision;
``pipeline.evaluate.oracles``). :func:`dubops.evaluation.session.run_evaluation`
scores every row beside the mean-mel and shuffled baselines (as ``dubops
eval``); the served path's reasoning answers and the majority-class answers are
scored with :mod:`dubops.evaluation.reasoning`. The gate reads the served
path's metrics, flat under the registry's names: the speech metrics of the
``overall`` scope under their report keys, the reasoning metrics prefixed
``reasoner_``. Oracle rows are reported (``oracles`` in ``evaluation.json``,
MLflow metrics ``oracle.<row>.<metric>``), never gated.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from dubops.components.runtime import StepContext, StepResult, run_step

logger = logging.getLogger(__name__)
MODEL = "model"  # the served path's system name in the evaluation
ORACLES_BOTH = ("conclusion", "footage")
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


ORACLE_SETS = {"conclusion": ("conclusion",), "footage": ("footage",), "both": ORACLES_BOTH}


def _dub(ctx: StepContext, out: Path) -> dict[str, Path]:
    """The served path's and each oracle row's wavs: ``{system: folder}``; and the drift
    reference (``drift_reference.json`` in the step folder) from the same pipeline."""
    from dubops.inference import DubbingPipeline
    from dubops.inference.corpus import describe_corpus, dub_corpus, system_name
    from dubops.monitoring.reference import FILE_NAME, build_reference

    settings = ctx.config.pipeline.evaluate
    rows = {MODEL: ()} | {
        system_name(ORACLE_SETS[name]): ORACLE_SETS[name] for name in settings.oracles
    }
    folders = {}
    with DubbingPipeline.from_parts(
        ctx.input("graph"),
        reasoner_dir=ctx.input("reasoner"),
        extractors_dir=ctx.input("extractors"),
        library_dir=ctx.input("library"),
        backend=ctx.config.library.backend,
        audio=ctx.config.audio,
        reason_batch_size=settings.reason_batch_size,
        max_new_tokens=ctx.config.reasoning.max_new_tokens,
    ) as pipeline:
        for system, oracles in rows.items():
            folders[system] = out / system
            dub_corpus(
                pipeline,
                ctx.data_dir,
                settings.splits,
                folders[system],
                oracles=oracles,
                max_clips=settings.max_clips,
                batch_size=settings.dub_batch_size,
            )
        watch = ctx.config.monitoring
        features, vectors = describe_corpus(
            pipeline,
            ctx.data_dir,
            watch.reference_splits,
            watch.reference_max_clips,
            batch_size=settings.reason_batch_size,
        )
    window = watch.window
    if len(features) < 2 * window:  # a small corpus: a smaller window, not a failed step
        window = max(2, len(features) // 2)
        logger.warning(
            "%d reference clips calibrate windows of at most %d dubs, not monitoring.window=%d",
            len(features),
            window,
            watch.window,
        )
    reference = build_reference(
        features,
        vectors,
        window=window,
        alpha=watch.alpha,
        draws=watch.draws,
        embedding_dims=watch.embedding_dims,
    )
    reference.splits = list(watch.reference_splits)
    reference.save(ctx.out_dir / FILE_NAME)
    return folders


def _answers(ctx: StepContext, served: Path, rows: Any, out: Path) -> tuple[Path, Path]:
    """The served path's reasoning answers and the majority-class answers as JSONL."""
    from dubops.fileio import atomic_path
    from dubops.inference.corpus import read_answers
    from dubops.reasoning.baselines import majority_answers

    files = (out / f"{MODEL}.jsonl", out / f"{REASONING_BASELINE}.jsonl")
    for path, lines in zip(
        files, (read_answers(served), majority_answers(ctx.data_dir, rows)), strict=True
    ):
        with atomic_path(path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return files


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
    dubbed = _dub(ctx, ctx.out_dir / "dubbed")
    missing = [c for c in clips.clip_id if not (dubbed[MODEL] / f"{c}.wav").is_file()]
    if missing:
        raise RuntimeError(f"dubbing left {len(missing)} evaluation clips out, e.g. {missing[:3]}")
    manifest = pd.read_parquet(CorpusLayout(ctx.data_dir).manifest)
    rows = manifest[manifest["clip_id"].isin(set(clips["clip_id"]))]
    answers = _answers(ctx, dubbed[MODEL], rows, ctx.out_dir / "reasoning")
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
        preds=list(dubbed.values()),
        baselines=list(SPEECH_BASELINES),
        options=options,
        out_dir=ctx.out_dir / "eval",
    )
    reasoning = {path.stem: score_reasoning(read_reasoning_jsonl(path), rows) for path in answers}
    metrics = speech_metrics(result["systems"][MODEL]) | reasoning_metrics(reasoning[MODEL])
    baselines = {name: speech_metrics(result["systems"][name]) for name in SPEECH_BASELINES}
    # The majority baseline writes its answers from a template, so its format validity is
    # 1.0 by construction: a bar a first model could only tie, never beat. The gate compares
    # the reasoner's accuracies with it, not its format.
    majority = reasoning_metrics(reasoning[REASONING_BASELINE])
    majority.pop("reasoner_format_validity", None)
    baselines[REASONING_BASELINE] = majority
    oracles = {name: speech_metrics(result["systems"][name]) for name in dubbed if name != MODEL}
    summary = {
        "metrics": metrics,
        "oracles": oracles,
        "baselines": baselines,
        "clips": len(clips),
        "splits": list(splits),
        "report": result["report"],
        "reasoning": reasoning,
    }
    write_json(ctx.out_dir / "evaluation.json", summary)
    with atomic_path(ctx.out_dir / "report.html") as tmp:
        tmp.write_text(evaluation_html(metrics, {**oracles, **baselines}, len(clips), list(splits)))
    if ctx.tracker is not None:
        for item in (ctx.out_dir / "eval").iterdir():
            if item.name != "baselines":  # the baselines' wavs: rebuilt from the corpus
                ctx.tracker.log_artifact(
                    item, "evaluation" if item.is_file() else f"evaluation/{item.name}"
                )
        ctx.tracker.log_artifact(ctx.out_dir / "reasoning", "reasoning")
        ctx.tracker.log_artifact(ctx.out_dir / "report.html")
        ctx.tracker.log_artifact(ctx.out_dir / "drift_reference.json", "monitoring")
        ctx.tracker.log_dict(baselines, "baselines.json")
        ctx.tracker.log_dict(oracles, "oracles.json")
        ctx.tracker.log_metrics(
            {f"oracle.{row}.{k}": v for row, values in oracles.items() for k, v in values.items()}
        )
    return StepResult(
        exports={
            "report": "report.html",
            "evaluation": "evaluation.json",
            "drift_reference": "drift_reference.json",
        },
        metrics=metrics,
    )


def run_evaluate(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    corpus: Any,
    reasoner: Any,
    graph: Any,
    extractors: Any,
    library: Any,
    metrics: Any,
    report: Any,
    evaluation: Any,
    drift_reference: Any,
) -> None:
    run_step(
        "evaluate",
        config_json=config_json,
        store_dir=store_dir,
        parent_run_id=parent_run_id,
        body=_evaluate,
        inputs={
            "corpus": corpus,
            "reasoner": reasoner,
            "graph": graph,
            "extractors": extractors,
            "library": library,
        },
        outputs={
            "metrics": metrics,
            "report": report,
            "evaluation": evaluation,
            "drift_reference": drift_reference,
        },
        metrics_to_parent=True,
    )
