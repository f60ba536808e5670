"""``dubops pipeline``: run, compile and schedule the training pipeline (Kubeflow)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dubops.cli.common import err_console, print_json, user_errors
from dubops.cli.options import config_options

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig

app = typer.Typer(
    help="Run, compile and schedule the training pipeline (Kubeflow).", no_args_is_help=True
)


@app.command()
@config_options(json=True)
def run(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", "-d", help="Corpus folder (default: synthesize the preset's into OUT/corpus)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Artifact store (default: pipeline.store of the preset)."),
    ] = None,
    run_name: Annotated[
        str | None, typer.Option("--run-name", help="Name of the parent MLflow run.")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show every line the steps print (else: a log file).")
    ] = False,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Run the training DAG here (kfp.local), reusing unchanged steps from the cache.

    A run stopped half-way (Ctrl-C, a failing step) resumes from the last finished
    step. Each step's outputs stay in OUT/<step>/<cache key>/; the run's step records
    and logs in OUT/runs/<MLflow run id>/.
    """
    with user_errors():
        from dubops.cli.checks import corpus_dir, output_dir

        store = out or Path(config.pipeline.store)
        output_dir(store, "--out")
        if data is not None:
            corpus_dir(data)
        from dubops.pipelines.local import run_locally

        if data is None:
            data = _synthesize(config, store / "corpus", quiet=as_json)
        result = run_locally(config, data, store, run_name=run_name, verbose=verbose)
    if as_json:
        print_json(
            {
                "run_id": result.run_id,
                "status": result.status,
                "seconds": result.seconds,
                "store": str(result.store),
                "error": result.error,
                "log": str(result.log),
                "gate": result.gate,
                "steps": [e.__dict__ for e in result.events],
            }
        )
    else:
        _print_run(result)
    if not result.ok:
        raise typer.Exit(1)


def _synthesize(config, folder: Path, quiet: bool) -> Path:
    from dubops.cli.common import progress_bar
    from dubops.data.synthetic import generate_corpus

    with progress_bar("synthesizing the corpus", quiet=quiet) as update:
        generate_corpus(config, folder, progress=update)
    return folder


def _print_run(result) -> None:
    from rich import box
    from rich.table import Table

    table = Table(title=f"pipeline run {result.run_id}", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("step", "status", "seconds", "cache key"):
        table.add_column(column)
    colours = {"ran": "green", "cached": "cyan", "failed": "red", "killed": "red"}
    for e in result.events:
        status = f"[{colours.get(e.status, 'white')}]{e.status}[/]"
        table.add_row(e.step, status, f"{e.seconds:.1f}", e.key)
    console = err_console()
    console.print(table)
    for e in result.events:
        if e.error:
            console.print(f"[red]{e.step}[/]: {e.error}")
    if result.gate is not None:
        verdict = "[green]passed[/]" if result.gate["passed"] else "[yellow]refused[/]"
        console.print(
            f"gate {verdict} v{result.gate['challenger']}: {result.gate['reason']}"
            + (" -> champion" if result.gate["passed"] else "")
        )
    colour = "green" if result.ok else "red"
    console.print(
        f"[bold {colour}]{result.status}[/] in {result.seconds:.1f} s; store {result.store}; "
        f"step logs {result.log}"
    )


@app.command("compile")
@config_options(preset="base")
def compile_command(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Pipeline IR file to write (YAML).")
    ] = Path("training.yaml"),
    *,
    config: DubOpsConfig,
) -> None:
    """Write the pipeline IR for Kubeflow (GPUs, node selector, tolerations, PVC, secrets).

    The per-step Kubernetes settings come from the config's pipeline.cluster section.
    """
    with user_errors():
        from dubops.pipelines.compile import compile_pipeline

        path = compile_pipeline(config, output)
    err_console().print(f"[green]compiled[/] {config.pipeline.name} ({config.preset}) -> {path}")


@app.command()
@config_options(json=True, preset="base")
def schedule(
    host: Annotated[str, typer.Option("--host", help="KFP API endpoint, e.g. http://kfp:8888.")],
    cron: Annotated[
        str | None,
        typer.Option(
            "--cron", help="Six fields: s m h dom mon dow, e.g. '0 0 3 * * *' (03:00 daily)."
        ),
    ] = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", help="KFP experiment (created when missing).")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="User namespace (multi-user Kubeflow).")
    ] = None,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Compile the pipeline and create a recurring run on a Kubeflow Pipelines server."""
    with user_errors():
        from dubops.pipelines.schedule import schedule_pipeline

        created = schedule_pipeline(config, host, cron, experiment, namespace)
    if as_json:
        print_json(created.__dict__)
        return
    err_console().print(
        f"[green]scheduled[/] {created.name}: recurring run {created.recurring_run_id} "
        f"(pipeline {created.pipeline_id}, version {created.pipeline_version_id}, "
        f"experiment {created.experiment_id})"
    )
