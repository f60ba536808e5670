"""Training-pipeline settings, re-exported from :mod:`dubops.config.pipeline_settings`.

They are the ``pipeline`` section of ``DubOpsConfig``, so they live in the library's
config (which must not import its orchestrator); this module keeps the pipeline's
``from dubops.pipelines.settings import ...`` working.
"""

from __future__ import annotations

from dubops.config.pipeline_settings import (
    STEPS,
    TRAINING_STEPS,
    ClusterSettings,
    EvaluateSettings,
    GpuSettings,
    PipelineConfig,
    Resources,
    ScheduleSettings,
    SecretEnv,
    Toleration,
)

__all__ = [
    "STEPS",
    "TRAINING_STEPS",
    "ClusterSettings",
    "EvaluateSettings",
    "GpuSettings",
    "PipelineConfig",
    "Resources",
    "ScheduleSettings",
    "SecretEnv",
    "Toleration",
]
