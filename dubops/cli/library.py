"""``dubops library``: build and query the Reference Footage Library (Feast + Milvus Lite)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Build and query the Reference Footage Library.", no_args_is_help=True)
