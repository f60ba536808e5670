"""``dubops registry``: list, compare, promote and roll back dubbing models (MLflow)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="List, compare, promote and roll back dubbing models in the MLflow registry.",
    no_args_is_help=True,
)
