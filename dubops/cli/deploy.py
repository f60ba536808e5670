"""``dubops deploy render|check|monitoring``: the Kubernetes deployment, offline.

Thin over :mod:`dubops.deploy`: render an overlay of ``infra/k8s`` with Kustomize,
check every overlay (schemas, pod policy, checkov, images, monitoring manifests), and
regenerate the monitoring manifests from ``monitoring/``. No cluster is contacted:
apply what ``render`` prints with ``kubectl apply -f -`` (docs/deployment.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from dubops.cli.common import JsonOption, err_console, print_json, user_errors

app = typer.Typer(
    help="Render and check the Kubernetes deployment (infra/k8s) without a cluster.",
    no_args_is_help=True,
)

RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root", help="The DubOps checkout holding infra/ (default: this one, or the cwd)."
    ),
]


@app.command("render")
def render_command(
    overlay: Annotated[
        str, typer.Option("--overlay", "-o", help="local (kind, CPU), gpu, prod or knative.")
    ] = "local",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the manifests here instead of stdout."),
    ] = None,
    root: RootOption = None,
) -> None:
    """Print an overlay's manifests (`kubectl kustomize infra/k8s/overlays/OVERLAY`).

    Apply them with `dubops deploy render --overlay gpu | kubectl apply -f -`.
    """
    from dubops.deploy.layout import InfraLayout
    from dubops.deploy.render import render_text
    from dubops.fileio import atomic_path

    with user_errors():
        text = render_text(InfraLayout.find(root), overlay)
        if out is None:
            sys.stdout.write(text)
            return
        with atomic_path(out) as tmp:
            tmp.write_text(text)
        err_console().print(f"wrote {out}")


@app.command("check")
def check_command(
    overlay: Annotated[
        list[str] | None,
        typer.Option("--overlay", "-o", help="Check this overlay (repeatable; default: all)."),
    ] = None,
    checkov: Annotated[
        bool, typer.Option("--checkov/--no-checkov", help="Run checkov (about 10 s).")
    ] = True,
    root: RootOption = None,
    json: JsonOption = False,
) -> None:
    """Validate the overlays offline: schemas (core kinds and vendored CRDs, strict),
    pod policy, checkov, image names and the generated monitoring manifests.

    Exits 1 when a check finds a problem; each is printed with the manifest and field.
    """
    from dubops.deploy.checks import check_deployment
    from dubops.deploy.layout import InfraLayout

    with user_errors():
        layout = InfraLayout.find(root)
        console = err_console()
        with console.status("checking") as status:
            results = check_deployment(
                layout, overlay or None, checkov=checkov, progress=status.update
            )
    failed = [r for r in results if not r.passed]
    if json:
        print_json(
            {
                "passed": not failed,
                "checks": [
                    {"name": r.name, "checked": r.checked, "problems": r.problems} for r in results
                ],
            }
        )
    else:
        _print_results(results)
    if failed:
        raise typer.Exit(1)


def _print_results(results: list) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Deployment checks (offline)")
    table.add_column("check")
    table.add_column("items", justify="right")
    table.add_column("result")
    for result in results:
        verdict = "[green]pass[/]" if result.passed else f"[red]{len(result.problems)} problems[/]"
        table.add_row(result.name, str(result.checked), verdict)
    console = Console()
    console.print(table)
    for result in results:
        for problem in result.problems:
            console.print(f"[red]{result.name}[/]: {problem}", highlight=False)


@app.command("monitoring")
def monitoring_command(
    check: Annotated[
        bool,
        typer.Option("--check", help="Only say whether the files are current (exit 1 if not)."),
    ] = False,
    root: RootOption = None,
) -> None:
    """Regenerate the PrometheusRule and the Grafana dashboard ConfigMap of
    infra/k8s/base/monitoring from monitoring/rules and monitoring/dashboards."""
    from dubops.deploy import monitoring_manifests
    from dubops.deploy.layout import InfraLayout

    with user_errors():
        layout = InfraLayout.find(root)
        if check:
            stale = monitoring_manifests.stale(layout)
            for name in stale:
                err_console().print(f"stale: {name} (run `dubops deploy monitoring`)")
            raise typer.Exit(1 if stale else 0)
        changed = monitoring_manifests.write(layout)
    err_console().print(f"updated: {', '.join(changed)}" if changed else "already current")
