"""Load a preset, merge a user YAML and ``--set key.path=value`` overrides, validate.

The one config loader: entry points call :func:`load_config` and pass the
resulting object down.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from dubops.config.models import DubOpsConfig
from dubops.errors import DubOpsError


class ConfigError(DubOpsError, ValueError):
    """A configuration problem with a message that names the field and the fix."""


def available_presets() -> list[str]:
    """Names of the presets shipped with the package."""
    folder = resources.files("dubops.config") / "presets"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def _read_preset(name: str) -> dict[str, Any]:
    path = resources.files("dubops.config") / "presets" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; choose one of {available_presets()}")
    return yaml.safe_load(path.read_text()) or {}


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _keep_field_defaults(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with each nested section merged over its field's own default.

    Why: a field may default to a section other than its class's defaults (the
    ControlNet's ``TrainConfig(lr=1e-4, warmup_steps=500)``). Pydantic builds a
    section the user touched from the class defaults alone, so setting one key
    (``--set speech.controlnet_training.context=prompt``) silently reset the others.
    """
    from pydantic_core import PydanticUndefined

    out = dict(data)
    for name, field in model.model_fields.items():
        section = field.annotation
        value = out.get(name)
        if not (isinstance(value, dict) and isinstance(section, type)):
            continue
        if not issubclass(section, BaseModel):
            continue
        if field.default_factory is not None:
            default = field.default_factory()
        else:
            default = None if field.default is PydanticUndefined else field.default
        if isinstance(default, BaseModel):
            value = _deep_merge(default.model_dump(exclude_unset=True), value)
        out[name] = _keep_field_defaults(section, value)
    return out


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``"synth.clips=50"`` into ``(["synth", "clips"], 50)``; values are YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: must look like section.field=value")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from None
    return parts, value


def _apply_override(data: dict[str, Any], parts: list[str], value: Any) -> None:
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {'.'.join(parts)}: {part!r} is not a section")
    node[parts[-1]] = value


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(root)"
        lines.append(f"{field}: {err['msg']}")
    return "invalid configuration (preset, --config or --set):\n  " + "\n  ".join(lines)


def load_config(
    preset: str = "tiny",
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
) -> DubOpsConfig:
    """Build the validated configuration.

    Args:
        preset: name of a shipped preset (``tiny`` or ``base``).
        config_file: optional YAML merged over the preset.
        overrides: ``section.field=value`` strings applied last.

    Raises:
        ConfigError: naming the field that is wrong and what it should be.
    """
    data = _read_preset(preset)
    data["preset"] = preset
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            extra = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            where = " ".join(str(exc).split())
            raise ConfigError(f"--config {path}: not valid UTF-8 YAML ({where})") from None
        if not isinstance(extra, dict):
            raise ConfigError(f"--config {path}: must be a mapping of sections, e.g. synth: {{}}")
        data = _deep_merge(data, extra)
    for item in overrides or []:
        parts, value = parse_override(item)
        _apply_override(data, parts, value)
    try:
        return DubOpsConfig.model_validate(_keep_field_defaults(DubOpsConfig, data))
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None


def config_hash(config: DubOpsConfig) -> str:
    """A short stable hash of the whole configuration (for tags and caches)."""
    blob = json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def flatten_config(config: DubOpsConfig) -> dict[str, str]:
    """``{"synth.clips": "360", ...}``: the config as MLflow params."""
    flat: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = json.dumps(node) if isinstance(node, list | dict) else str(node)

    walk("", config.model_dump(mode="json"))
    return flat
