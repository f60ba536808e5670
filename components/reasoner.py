"""The reasoner's steps: ``reasoner_sft`` (CoT SFT, stage 1.1) and ``reasoner_mpo`` (1.2)."""

from __future__ import annotations

from typing import Any

from dubops.components.runtime import StepContext, StepResult, run_step


def reasoner_metrics(result: Any) -> dict[str, float]:
    """Updates, minutes and the validation scores of a reasoner stage."""
    metrics = {"steps": float(result.steps), "minutes": float(result.minutes)}
    if result.train_loss is not None:
        metrics["train_loss"] = float(result.train_loss)
    for name, value in (result.validation or {}).items():
        if isinstance(value, int | float):
            metrics[f"val_{name}"] = float(value)
    return metrics


def _sft(ctx: StepContext) -> StepResult:
    from dubops.reasoning.sft import train_sft

    out = ctx.out_dir / "reasoner"
    minutes = ctx.config.pipeline.stage_minutes
    result = train_sft(ctx.config, ctx.data_dir, out, ctx.resume, minutes, ctx.tracker)
    return StepResult(exports={"reasoner": "reasoner"}, metrics=reasoner_metrics(result))


def _mpo(ctx: StepContext) -> StepResult:
    from dubops.reasoning.mpo import train_mpo

    out = ctx.out_dir / "reasoner"
    minutes = ctx.config.pipeline.stage_minutes
    result = train_mpo(
        ctx.config, ctx.data_dir, ctx.input("sft"), out, ctx.resume, minutes, ctx.tracker
    )
    kept = (result.extra or {}).get("kept", "mpo")
    if ctx.tracker is not None:
        ctx.tracker.set_tags({"dubops.mpo_kept": kept})
    return StepResult(exports={"reasoner": "reasoner"}, metrics=reasoner_metrics(result))


def run_reasoner_sft(
    config_json: str, store_dir: str, parent_run_id: str, corpus: Any, reasoner: Any
) -> None:
    run_step(
        "reasoner_sft",
        config_json=config_json,
        store_dir=store_dir,
        parent_run_id=parent_run_id,
        body=_sft,
        inputs={"corpus": corpus},
        outputs={"reasoner": reasoner},
    )


def run_reasoner_mpo(
    config_json: str, store_dir: str, parent_run_id: str, corpus: Any, sft: Any, reasoner: Any
) -> None:
    run_step(
        "reasoner_mpo",
        config_json=config_json,
        store_dir=store_dir,
        parent_run_id=parent_run_id,
        body=_mpo,
        inputs={"corpus": corpus, "sft": sft},
        outputs={"reasoner": reasoner},
    )
