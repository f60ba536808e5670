"""The ``dubops`` entry point. Sub-commands import their heavy libraries lazily."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from dubops.cli import (
    data,
    deploy,
    dubbing,
    emotion,
    graph,
    library,
    monitor,
    pipeline,
    reasoning,
    registry,
    scene,
    serve,
    train,
)
from dubops.cli.evaluate import evaluate_command


def _show_flags_as_flags() -> None:
    """Print on/off switches in ``--help`` as bare flags.

    typer 0.29 writes ``<bool>`` in the type column of every flag (``--json
    <bool>``, even ``--help <bool>``), which reads as if the flag took a value.
    """
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_dubops", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    display_type_rich._dubops = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_show_flags_as_flags()


class _DubOpsTyper(typer.Typer):
    """The app, with a last net for user errors raised outside a command's own handler.

    Commands report their errors through :func:`dubops.cli.common.user_errors`;
    this catches what escapes them (e.g. a pool worker's error re-raised after the
    block) so that a user error never ends in a traceback, and Ctrl-C in a clean
    line instead of a KeyboardInterrupt trace.
    """

    def __call__(self, *args, **kwargs):
        from dubops.cli.common import is_user_error, report_error

        try:
            return super().__call__(*args, **kwargs)
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            raise SystemExit(130) from None
        except Exception as exc:
            if not is_user_error(exc):
                raise
            report_error(exc)
            raise SystemExit(2) from None


app = _DubOpsTyper(
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
app.add_typer(serve.app, name="serve")
app.add_typer(monitor.app, name="monitor")
app.add_typer(deploy.app, name="deploy")
app.command("dub")(dubbing.dub_command)
app.command("speak")(dubbing.speak_command)
app.command("dub-clip")(dubbing.dub_clip_command)
app.command("dub-video")(scene.dub_video_command)
data.app.command("scene")(scene.scene_command)
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
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Debug logging, and full tracebacks for errors."),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Set up logging for every command."""
    from dubops.cli.common import STATE
    from dubops.logs import setup_logging

    STATE.verbose, STATE.json = verbose, False
    setup_logging("DEBUG" if verbose else "INFO")


if __name__ == "__main__":
    app()
