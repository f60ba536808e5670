"""``dubops pipeline compile``: the training DAG as Kubeflow pipeline IR (YAML)."""

from __future__ import annotations

import logging
from pathlib import Path

from dubops.config import DubOpsConfig
from dubops.errors import InputError

logger = logging.getLogger(__name__)


def compile_pipeline(config: DubOpsConfig, out: str | Path) -> Path:
    """Write the pipeline IR, with the cluster settings of ``config.pipeline``, atomically."""
    from kfp import compiler

    from dubops.fileio import atomic_path
    from dubops.pipelines.training import build_pipeline

    out = Path(out)
    if out.suffix not in (".yaml", ".yml"):
        raise InputError(f"-o {out}: the pipeline IR is YAML; name the file *.yaml")
    uri = config.tracking.tracking_uri
    if uri.startswith("sqlite:") or "://" not in uri:
        logger.warning(
            "tracking.tracking_uri is %s: on a cluster every step would write its own local "
            "store; set the MLflow server, e.g. --set tracking.tracking_uri=http://mlflow:5000",
            uri,
        )
    with atomic_path(out) as tmp:
        compiler.Compiler().compile(build_pipeline(config), str(tmp))
    return out
