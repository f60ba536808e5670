"""``@config_options``: the shared --preset/--config/--set/--json options and the loaded config."""

from __future__ import annotations

import inspect
import json
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import pytest
import typer
from typer.testing import CliRunner

from dubops.cli.options import config_options

if TYPE_CHECKING:  # unresolvable at run time: the decorator must not need it
    from dubops.config import DubOpsConfig

runner = CliRunner()
SHARED = ("--preset", "--config", "--set")
# Module level: string annotations resolve in the module's globals.
Name = Annotated[str, typer.Argument(help="A name.")]
Clips = Annotated[int | None, typer.Option(help="Clips.")]


def _app(json: bool = False, **options) -> tuple[typer.Typer, list]:
    """A one-command app whose command records what it was called with."""
    calls: list = []
    app = typer.Typer()

    if json:

        @app.command()
        @config_options(json=True, **options)
        def show_json(
            name: Name, clips: Clips = None, *, config: DubOpsConfig, as_json: bool
        ) -> None:
            calls.append((name, clips, config, {"as_json": as_json}))

    else:

        @app.command()
        @config_options(**options)
        def show(name: Name, clips: Clips = None, *, config: DubOpsConfig) -> None:
            calls.append((name, clips, config, {}))

    return app, calls


def test_signature_keeps_own_parameters_then_appends_the_shared_ones():
    @config_options(json=True, preset="base")
    def command(
        out: Annotated[Path, typer.Option("--out")],
        *,
        config: DubOpsConfig,
        as_json: bool,
    ) -> None:
        """Doc."""

    params = inspect.signature(command).parameters
    assert list(params) == ["out", "preset", "config_file", "overrides", "as_json"]
    assert params["preset"].default == "base" and params["as_json"].default is False
    assert command.__name__ == "command" and command.__doc__ == "Doc."
    # typer resolves the annotations as well: they must be objects, not strings.
    assert not any(isinstance(p.annotation, str) for p in params.values())
    assert "config" not in typing.get_type_hints(command, include_extras=True)


def test_loads_the_config_with_presets_overrides_and_shortcuts():
    app, calls = _app(set_from={"clips": "synth.clips"})
    result = runner.invoke(app, ["x", "--set", "synth.clips=7", "--preset", "tiny"])
    assert result.exit_code == 0, result.output
    name, clips, config, rest = calls[-1]
    assert (name, clips, config.synth.clips, config.preset, rest) == ("x", None, 7, "tiny", {})
    # The shortcut is applied after --set, as it was when synth built the list itself.
    result = runner.invoke(app, ["x", "--clips", "3", "-s", "synth.clips=7"])
    assert result.exit_code == 0, result.output
    assert calls[-1][1] == 3 and calls[-1][2].synth.clips == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "huge"], "unknown preset"),
        (["--set", "synth.clipz=3"], "synth.clipz"),
        (["--set", "synth.clips"], "section.field=value"),
        (["--config", "nope.yaml"], "--config"),
    ],
)
def test_bad_config_exits_2_in_one_line(args, message):
    app, calls = _app()
    result = runner.invoke(app, ["x", *args])
    assert result.exit_code == 2 and not calls
    assert message in result.output and "Traceback" not in result.output


def test_json_errors_are_json():
    app, calls = _app(json=True)
    result = runner.invoke(app, ["x", "--preset", "huge", "--json"])
    assert result.exit_code == 2 and not calls
    assert "unknown preset" in json.loads(result.stdout)["error"]
    assert runner.invoke(app, ["x", "--json"]).exit_code == 0
    assert calls[-1][3] == {"as_json": True}


def test_misuse_is_a_type_error():
    with pytest.raises(TypeError, match="declare them"):

        @config_options(json=True)
        def no_json(*, config) -> None: ...

    with pytest.raises(TypeError, match="itself"):

        @config_options()
        def own_preset(preset: str = "tiny", *, config) -> None: ...

    with pytest.raises(TypeError, match="set_from"):

        @config_options(set_from={"clips": "synth.clips"})
        def no_clips(*, config) -> None: ...


def _commands(group, path=()):
    from typer.core import TyperGroup

    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_every_config_command_offers_the_shared_options_last():
    from dubops.cli.main import app

    seen = 0
    for path, command in _commands(typer.main.get_command(app)):
        options = [p.opts[0] for p in command.params if p.opts[0].startswith("--")]
        if "--preset" not in options:
            continue
        seen += 1
        at = options.index("--preset")
        assert tuple(options[at : at + 3]) == SHARED, path
        assert options[at + 3 :] in ([], ["--json"]), path
        assert runner.invoke(app, [*path, "--help"]).exit_code == 0, path
    assert seen >= 20
