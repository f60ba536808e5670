"""The options every config-driven command shares: --preset, --config, --set (and --json).

A command declares ``config`` (and ``as_json``) and takes the rest from
:func:`config_options`, so the options read the same in every ``--help`` and the
config is loaded, with the same errors, in one place.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from dubops.cli.common import JsonOption, user_errors

PresetOption = Annotated[
    str, typer.Option("--preset", "-p", help="Configuration preset: tiny (CPU) or base (GPU).")
]
ConfigFileOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML file merged over the preset.", dir_okay=False),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override one setting, e.g. --set synth.clips=50 (repeatable; values are YAML).",
    ),
]

_R = TypeVar("_R")


def load(preset: str, config_file: Path | None, overrides: list[str] | None):
    """Load the configuration or exit with the loader's message."""
    from dubops.config import load_config

    with user_errors():
        if config_file is not None:
            from dubops.cli.checks import input_file

            input_file(config_file, "--config", "config file")
        return load_config(preset, config_file, overrides)


def config_options(
    *, json: bool = False, preset: str = "tiny", set_from: Mapping[str, str] | None = None
) -> Callable[[Callable[..., _R]], Callable[..., _R]]:
    """Give a command --preset, --config, --set (and --json) and call it with the loaded config.

    The command declares ``config`` (and, with ``json``, ``as_json``) among its
    parameters; ``--help`` shows its other options in their order, then the shared
    ones. A bad preset, config file or --set value exits 2 with one line (JSON with
    --json) before the command runs.

    Args:
        json: add --json and pass the command ``as_json``.
        preset: the default of --preset.
        set_from: ``{parameter: "section.field"}``: a command option that is a
            shortcut for a --set (e.g. ``--clips`` for ``synth.clips``); given, it
            is applied after the --set values.
    """
    shortcuts = dict(set_from or {})

    def decorate(fn: Callable[..., _R]) -> Callable[..., _R]:
        own = inspect.signature(fn).parameters
        injected = {"config", "as_json"} if json else {"config"}
        _check_parameters(fn, set(own), injected, set(shortcuts))
        kept = [p for name, p in own.items() if name not in injected]
        hints = _resolved_hints(fn, [p.name for p in kept])
        shared = {
            "preset": (PresetOption, preset),
            "config_file": (ConfigFileOption, None),
            "overrides": (SetOption, None),
            **({"as_json": (JsonOption, False)} if json else {}),
        }
        params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in kept] + [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
            for name, (a, d) in shared.items()
        ]
        signature = inspect.Signature(
            params, return_annotation=hints.get("return", inspect.Signature.empty)
        )

        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> _R:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = dict(bound.arguments)
            overrides = [*(values.pop("overrides") or [])]
            overrides += [f"{k}={values[n]}" for n, k in shortcuts.items() if values[n] is not None]
            config = load(values.pop("preset"), values.pop("config_file"), overrides)
            return fn(**values, config=config)

        command.__signature__ = signature  # type: ignore[attr-defined]
        # typer resolves the annotations too: give it the public ones, already resolved.
        command.__annotations__ = {
            p.name: p.annotation for p in params if p.annotation is not p.empty
        }
        if "return" in hints:
            command.__annotations__["return"] = hints["return"]
        return command

    return decorate


def _check_parameters(
    fn: Callable[..., Any], own: set[str], injected: set[str], shortcuts: set[str]
) -> None:
    """A command that @config_options cannot serve is a programming error: say which."""
    name = fn.__qualname__
    if missing := injected - own:
        raise TypeError(f"{name}: @config_options passes {sorted(missing)}; declare them")
    if clash := own & ({"preset", "config_file", "overrides", "as_json"} - injected):
        raise TypeError(f"{name}: @config_options adds {sorted(clash)} itself")
    if unknown := shortcuts - own:
        raise TypeError(f"{name}: set_from names {sorted(unknown)}, not parameters")


def _resolved_hints(fn: Callable[..., Any], names: list[str]) -> dict[str, Any]:
    """``fn``'s annotations of ``names`` and its return, as objects (not strings).

    Only those: ``config`` may be annotated with a name imported under
    ``TYPE_CHECKING`` (the config models load lazily), which cannot be resolved.
    """
    wanted = {k: v for k, v in fn.__annotations__.items() if k in names or k == "return"}
    probe = types.SimpleNamespace(__annotations__=wanted)
    return typing.get_type_hints(probe, globalns=fn.__globals__, include_extras=True)
