"""The ``dubops`` entry point. Sub-commands import their heavy libraries lazily."""

from __future__ import annotations

from typing import Annotated

import typer

from dubops.cli import data, dub_clip, emotion, graph, library, pipeline, reasoning, registry, train
from dubops.cli.evaluate import evaluate_command

app = typer.Typer(
    name="dubops",
    help="DubOps: train, register, serve and monitor an AI movie-dubbing model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.add_typer(train.app, name="train")
app.add_typer(library.app, name="library")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(registry.app, name="registry")
app.command("dub")(train.dub_command)
app.command("speak")(train.speak_command)
app.command("dub-clip")(dub_clip.dub_clip_command)
app.command("eval")(evaluate_command)
app.command("reason")(reasoning.reason_command)
train.app.command("reasoner-sft")(reasoning.reasoner_sft)
train.app.command("reasoner-mpo")(reasoning.reasoner_mpo)
train.app.command("extractors")(emotion.train_extractors)
train.app.command("graph")(graph.train_graph)


def _version(value: bool) -> None:
    if value:
        from dubops import __version__

        typer.echo(f"dubops {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Set up logging for every command."""
    from dubops.logs import setup_logging

    setup_logging("DEBUG" if verbose else "INFO")


if __name__ == "__main__":
    app()
