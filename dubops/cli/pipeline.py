"""``dubops pipeline``: Run, compile and schedule the training pipeline (Kubeflow)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Run, compile and schedule the training pipeline (Kubeflow).", no_args_is_help=True
)
