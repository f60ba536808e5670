"""The ``graph_synthesizer`` step: the progressive emotion graph trained with the ControlNet."""

from __future__ import annotations

from typing import Any

from dubops.components.runtime import StepContext, StepResult, run_step
from dubops.components.speech import stage_metrics


def _graph(ctx: StepContext) -> StepResult:
    from dubops.emotion.graph_stage import train_graph

    result = train_graph(
        ctx.config,
        ctx.data_dir,
        ctx.input("controlnet"),
        ctx.input("library"),
        ctx.out_dir / "graph",
        resume=ctx.resume,
        max_minutes=ctx.config.pipeline.stage_minutes,
        tracker=ctx.tracker,
    )
    return StepResult(exports={"graph": "graph"}, metrics=stage_metrics(result))


def run_graph_synthesizer(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    corpus: Any,
    controlnet: Any,
    library: Any,
    graph: Any,
) -> None:
    run_step(
        "graph_synthesizer",
        config_json=config_json,
        store_dir=store_dir,
        parent_run_id=parent_run_id,
        body=_graph,
        inputs={"corpus": corpus, "controlnet": controlnet, "library": library},
        outputs={"graph": graph},
    )
