"""``dubops registry``: list, compare, promote and roll back dubbing models (MLflow)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dubops.cli.common import print_json, user_errors
from dubops.cli.options import config_options

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig

app = typer.Typer(
    help="List, compare, promote and roll back dubbing models in the MLflow registry.",
    no_args_is_help=True,
)

RefArgument = Annotated[str, typer.Argument(help="A version number (3, v3) or an alias.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Kept in the champion history.")]


@app.callback()
def _quiet_downloads() -> None:
    # MLflow's per-file download bars would bury the tables. No docstring: it would
    # replace the group's help.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@app.command("list")
@config_options(json=True)
def list_command(
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Every version: aliases, gate verdict and the gated metrics."""
    with user_errors():
        from dubops.registry.listing import list_registry

        data = list_registry(config)
    if as_json:
        print_json(data)
        return
    table = _table(f"registered model {data['model']!r} (gated metrics; --json for all)")
    metrics = data["gated_metrics"]
    for column in ("version", "aliases", "created", "gate", *[_short(m) for m in metrics]):
        table.add_column(column, no_wrap=True)
    for v in data["versions"]:
        gate = {"true": "[green]passed[/]", "false": "[red]refused[/]"}.get(
            v["info"].get("gate.passed", ""), "–"
        )
        table.add_row(
            f"v{v['version']}",
            _alias_text(v["aliases"]),
            v["created"][:16],
            gate,
            *[_num(v["metrics"].get(m)) for m in metrics],
        )
    _console().print(table)


@app.command("show")
@config_options(json=True)
def show_command(
    ref: RefArgument,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """One version (or alias): provenance tags, metrics, baselines, champion history."""
    with user_errors():
        from dubops.registry.listing import show_version

        data = show_version(config, ref)
    if as_json:
        print_json(data)
        return
    console = _console()
    console.print(
        f"[bold]{data['model']} v{data['version']}[/] {_alias_text(data['aliases'])} "
        f"created {data['created']} ({data['status']})\nsource {data['source']}"
    )
    info = _table("provenance")
    info.add_column("tag")
    info.add_column("value")
    for key, value in sorted(data["tags"].items()):
        info.add_row(key, str(value))
    console.print(info)
    systems = sorted(data["baselines"])
    metrics = _table("metrics")
    for column in ("metric", "this version", *systems):
        metrics.add_column(column, no_wrap=True)
    for name in sorted(set(data["metrics"]) | {m for s in systems for m in data["baselines"][s]}):
        metrics.add_row(
            name,
            _num(data["metrics"].get(name)),
            *[_num(data["baselines"][s].get(name)) for s in systems],
        )
    console.print(metrics)
    if data.get("champion_history"):
        history = _table("champion history (oldest first)")
        for column in ("version", "previous", "at", "reason"):
            history.add_column(column)
        for h in data["champion_history"]:
            previous = h.get("previous")
            history.add_row(
                f"v{h['version']}" + (" [yellow](pending)[/]" if h.get("pending") else ""),
                "–" if previous is None else f"v{previous}",
                str(h.get("at", "")),
                str(h.get("reason", "")),
            )
        console.print(history)
        notes = [h["note"] for h in data["champion_history"] if h.get("note")]
        for note in notes:  # an interrupted promotion or rollback: what the next one does
            console.print(f"[yellow]note:[/] {note}")


@app.command("promote")
@config_options(json=True)
def promote_command(
    version: RefArgument,
    reason: ReasonOption = "",
    force: Annotated[
        bool, typer.Option("--force", help="Promote without the gate (an operator's decision).")
    ] = False,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Make a version the champion: the gate runs first (inside the promotion lock)."""
    with user_errors():
        from dubops.registry.promotion import GateRefusedError, promote
        from dubops.registry.store import CHAMPION, alias_version, registry_client, resolve_version

        client = registry_client(config)
        name = config.registry.model_name
        target = int(resolve_version(client, name, version).version)
        before = alias_version(client, name, CHAMPION)
        try:
            promote(config, target, reason or ("forced" if force else ""), require_gate=not force)
        except GateRefusedError as refused:
            if as_json:
                print_json({"promoted": False, "gate": refused.decision.to_json()})
            else:
                _console().print(refused.decision.markdown())
                _console().print("[bold red]refused:[/] use --force to promote anyway")
            raise typer.Exit(1) from None
    if as_json:
        print_json({"promoted": True, "champion": target, "previous": before})
        return
    was = "none" if before is None else f"v{before}"
    _console().print(f"[bold green]champion[/] {name} v{target} (was {was})")


@app.command("rollback")
@config_options(json=True)
def rollback_command(
    reason: ReasonOption = "",
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Give the champion alias back to the previous champion."""
    with user_errors():
        from dubops.registry.promotion import rollback
        from dubops.registry.store import CHAMPION, alias_version, registry_client

        before = alias_version(registry_client(config), config.registry.model_name, CHAMPION)
        target = rollback(config, reason)
    if as_json:
        print_json({"champion": target, "rolled_back": before})
        return
    _console().print(f"[bold green]rolled back[/] v{before} -> champion v{target}")


@app.command("compare")
@config_options(json=True)
def compare_command(
    a: Annotated[str, typer.Argument(help="Version or alias (e.g. champion).")],
    b: Annotated[str, typer.Argument(help="Version or alias (e.g. challenger).")],
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Two versions metric by metric (gated metrics first)."""
    with user_errors():
        from dubops.registry.listing import compare_versions

        data = compare_versions(config, a, b)
    if as_json:
        print_json(data)
        return
    table = _table(f"{data['model']}: v{data['a']} vs v{data['b']}")
    for column in ("metric", "better", f"v{data['a']}", f"v{data['b']}", "B - A", "winner"):
        table.add_column(column, no_wrap=True)
    for r in data["rows"]:
        name = f"[bold]{r['metric']}[/]" if r["gated"] else r["metric"]
        table.add_row(
            name, r["direction"], _num(r["a"]), _num(r["b"]), _num(r["b_minus_a"]), r["better"]
        )
    _console().print(table)


@app.command("gate")
@config_options(json=True)
def gate_command(
    version: Annotated[
        str | None, typer.Argument(help="Version to judge (default: the challenger).")
    ] = None,
    *,
    config: DubOpsConfig,
    as_json: bool,
) -> None:
    """Run the promotion gate without promoting (exit 1 when it refuses)."""
    with user_errors():
        from dubops.registry.gate import run_gate
        from dubops.registry.store import registry_client, resolve_version

        number = None
        if version is not None:
            client = registry_client(config)
            number = int(resolve_version(client, config.registry.model_name, version).version)
        decision = run_gate(config, number)
    if as_json:
        print_json(decision.to_json())
    else:
        _console().print(decision.markdown())
    if not decision.passed:
        raise typer.Exit(1)


def _console() -> Any:
    """stderr; 160 columns when it is not a terminal (piped output keeps whole rows)."""
    import sys

    from rich.console import Console

    return Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def _table(title: str) -> Any:
    from rich import box
    from rich.table import Table

    return Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)


def _alias_text(aliases: list[str]) -> str:
    colours = {"champion": "green", "challenger": "yellow"}
    return " ".join(f"[{colours.get(a, 'cyan')}]@{a}[/]" for a in aliases) or ""


_SHORT = {
    "emo_acc": "EMO-ACC",
    "spk_sim_target": "SPK-SIM",
    "mcd_dtw": "MCD",
    "wer": "WER",
    "lse_abs_offset_frames": "|offset|",
    "reasoner_scene_type_accuracy": "scene acc",
    "reasoner_scene_type_average_recall": "avg recall",
    "reasoner_format_validity": "format",
}


def _short(metric: str) -> str:
    return _SHORT.get(metric, metric)


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"
