"""The footage library's steps: ``train_extractors`` then ``build_library``.

Two steps rather than one so each has its own cache entry and MLflow run: a change
to the library's settings (K, the splits) rebuilds the library without retraining
the four extractors, and the bundle names the extractors it was built with.
"""

from __future__ import annotations

from typing import Any

from dubops.components.runtime import StepContext, StepResult, run_step


def _extractors(ctx: StepContext) -> StepResult:
    from dubops.emotion.extractor_training import train_extractors

    out = ctx.out_dir / "extractors"
    minutes = ctx.config.pipeline.stage_minutes
    result = train_extractors(ctx.config, ctx.data_dir, out, ctx.tracker, max_minutes=minutes)
    metrics = {"minutes": float(result.minutes)}
    for name, splits in result.accuracy.items():
        for split, acc in splits.items():
            metrics[f"{name}_{split}_accuracy"] = float(acc)
    return StepResult(exports={"extractors": "extractors"}, metrics=metrics)


def _library(ctx: StepContext) -> StepResult:
    from dubops.feature_store.build import build_library

    report = build_library(
        ctx.config,
        ctx.data_dir,
        ctx.out_dir / "library",
        extractors_dir=ctx.input("extractors"),
    )
    if ctx.tracker is not None:
        ctx.tracker.set_tags({"library_version": report.version})
    metrics = {"footage": float(report.footage), "clips": float(report.clips)}
    return StepResult(
        exports={"library": "library"}, metrics=metrics, values={"version": report.version}
    )


def run_train_extractors(
    config_json: str, store_dir: str, parent_run_id: str, corpus: Any, extractors: Any
) -> None:
    run_step(
        "train_extractors",
        config_json=config_json,
        store_dir=store_dir,
        parent_run_id=parent_run_id,
        body=_extractors,
        inputs={"corpus": corpus},
        outputs={"extractors": extractors},
    )


def run_build_library(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    corpus: Any,
    extractors: Any,
    library: Any,
) -> None:
    run_step(
        "build_library",
        config_json=config_json,
        store_dir=store_dir,
        parent_run_id=parent_run_id,
        body=_library,
        inputs={"corpus": corpus, "extractors": extractors},
        outputs={"library": library},
    )
