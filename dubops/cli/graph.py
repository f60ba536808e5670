"""``dubops train graph``: the graph-synthesizer stage (Authentic-Dubber's progressive graph)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dubops.cli.common import user_errors
from dubops.cli.options import config_options
from dubops.cli.train import DataOption, MinutesOption, MlflowOption, ResumeOption, _run

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig


@config_options(json=True)
def train_graph(
    data: DataOption = Path("data/tiny"),
    controlnet: Annotated[
        Path, typer.Option("--controlnet", help="Finished controlnet run folder.")
    ] = Path("outputs/controlnet"),
    library: Annotated[
        Path, typer.Option("--library", help="Footage library (from `dubops library build`).")
    ] = Path("outputs/library"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")] = Path("outputs/graph"),
    resume: ResumeOption = False,
    max_minutes: MinutesOption = None,
    ablation: Annotated[
        str | None,
        typer.Option(
            help="Table 2 ablation: none, no-scene-retrieval, no-face-retrieval, "
            "no-text-retrieval, no-retrieval, no-indirect, no-direct, no-graph, "
            "no-construct-encode, no-hierarchical (default: graph.ablation)."
        ),
    ] = None,
    mlflow: MlflowOption = True,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Train the progressive emotion graph + aggregation with the ControlNet (DiT frozen)."""
    with user_errors():
        from dubops.emotion.graph_settings import graph_ablation
        from dubops.emotion.graph_stage import train_graph as run_stage

        if ablation is not None:  # into the config, so MLflow's params show it
            graph_ablation(ablation)
            config = config.model_copy(
                update={"graph": config.graph.model_copy(update={"ablation": ablation})}
            )
        _run(
            "graph",
            config,
            data,
            as_json,
            mlflow,
            lambda tracker: run_stage(
                config, data, controlnet, library, out, resume, max_minutes, tracker
            ),
        )
