"""The speech generator's steps: ``dit_pretrain`` (stage 2.1) and ``controlnet_tune`` (2.2)."""

from __future__ import annotations

from typing import Any

from dubops.components.runtime import StepContext, StepResult, run_step


def stage_metrics(result: Any) -> dict[str, float]:
    """The scalar outcome of a speech-style stage (updates, losses, minutes)."""
    values = {
        "steps": result.step,
        "train_loss": result.train_loss,
        "val_loss": result.val_loss,
        "minutes": result.minutes,
    }
    return {k: float(v) for k, v in values.items() if v is not None}


def _pretrain(ctx: StepContext) -> StepResult:
    from dubops.speech.stages import pretrain_dit

    result = pretrain_dit(
        ctx.config,
        ctx.data_dir,
        ctx.out_dir / "dit",
        resume=ctx.resume,
        max_minutes=ctx.config.pipeline.stage_minutes,
        tracker=ctx.tracker,
    )
    return StepResult(exports={"dit": "dit"}, metrics=stage_metrics(result))


def _controlnet(ctx: StepContext) -> StepResult:
    from dubops.speech.stages import tune_controlnet

    result = tune_controlnet(
        ctx.config,
        ctx.data_dir,
        ctx.input("dit"),
        ctx.out_dir / "controlnet",
        resume=ctx.resume,
        max_minutes=ctx.config.pipeline.stage_minutes,
        tracker=ctx.tracker,
    )
    return StepResult(exports={"controlnet": "controlnet"}, metrics=stage_metrics(result))


def run_dit_pretrain(
    config_json: str, store_dir: str, parent_run_id: str, corpus: Any, dit: Any
) -> None:
    run_step(
        "dit_pretrain",
        config_json=config_json,
        store_dir=store_dir,
        parent_run_id=parent_run_id,
        body=_pretrain,
        inputs={"corpus": corpus},
        outputs={"dit": dit},
    )


def run_controlnet_tune(
    config_json: str, store_dir: str, parent_run_id: str, corpus: Any, dit: Any, controlnet: Any
) -> None:
    run_step(
        "controlnet_tune",
        config_json=config_json,
        store_dir=store_dir,
        parent_run_id=parent_run_id,
        body=_controlnet,
        inputs={"corpus": corpus, "dit": dit},
        outputs={"controlnet": controlnet},
    )
