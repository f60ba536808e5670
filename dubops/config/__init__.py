"""Configuration: typed models, shipped presets and the one loader."""

from dubops.config.loader import ConfigError, config_hash, flatten_config, load_config
from dubops.config.models import (
    AudioConfig,
    DubOpsConfig,
    ReportConfig,
    SynthConfig,
    TrackingConfig,
    VideoConfig,
)

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
