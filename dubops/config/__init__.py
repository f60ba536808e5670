"""Configuration: typed models, shipped presets and the one loader.

The names below load on first use, so a settings module can import
:mod:`dubops.config.section` (the base of every section) without importing the
models that import it back.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dubops.config.loader import ConfigError, config_hash, flatten_config, load_config
    from dubops.config.models import (
        AudioConfig,
        DubOpsConfig,
        ReportConfig,
        SynthConfig,
        TrackingConfig,
        VideoConfig,
    )

# name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    "AudioConfig": "models",
    "ConfigError": "loader",
    "DubOpsConfig": "models",
    "ReportConfig": "models",
    "SynthConfig": "models",
    "TrackingConfig": "models",
    "VideoConfig": "models",
    "config_hash": "loader",
    "flatten_config": "loader",
    "load_config": "loader",
}

__all__ = [
    "AudioConfig",
    "ConfigError",
    "DubOpsConfig",
    "ReportConfig",
    "SynthConfig",
    "TrackingConfig",
    "VideoConfig",
    "config_hash",
    "flatten_config",
    "load_config",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"dubops.config.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
