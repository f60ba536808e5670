"""The parent MLflow run of one pipeline run; every step's run nests under it.

``dubops pipeline run`` opens the parent before it submits the pipeline and passes its
id as the ``parent_run_id`` parameter. A run started by Kubeflow itself (a recurring
run) passes none: the first step then opens one tagged with the KFP job id, and the
exit handler finds it again by that tag. The exit handler closes it: FINISHED when
every task succeeded, FAILED otherwise.
"""

from __future__ import annotations

import logging
from typing import Any

from dubops.config import DubOpsConfig, config_hash, flatten_config

logger = logging.getLogger(__name__)

TAG_PARENT = "mlflow.parentRunId"  # MLflow's own tag: the UI nests runs by it
TAG_JOB = "dubops.pipeline_job_id"
TAG_PIPELINE = "dubops.pipeline"
TAG_STEP = "dubops.pipeline_step"
TAG_CACHE_KEY = "dubops.cache_key"
TAG_CACHED = "dubops.cached"

_PARAM_BATCH = 100  # MLflow's limit of params per log_batch call


def _client(config: DubOpsConfig) -> tuple[Any, str]:
    import mlflow

    from dubops.tracking import configure_tracking

    experiment_id = configure_tracking(config.tracking)
    return mlflow.MlflowClient(), experiment_id


def open_parent_run(
    config: DubOpsConfig,
    data_version: str,
    run_name: str | None = None,
    job_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Create the parent run (status RUNNING) with the reproducibility tags; return its id."""
    from mlflow.entities import Param

    from dubops.run_environment import environment_tags
    from dubops.tracking import TAG_CONFIG_HASH, TAG_DATA_VERSION, TAG_GIT_COMMIT, TAG_PRESET
    from dubops.tracking import git_commit as current_commit

    client, experiment_id = _client(config)
    run_tags = {
        TAG_CONFIG_HASH: config_hash(config),
        TAG_PRESET: config.preset,
        TAG_DATA_VERSION: data_version,
        TAG_PIPELINE: config.pipeline.name,
    }
    commit = current_commit()
    if commit is not None:
        run_tags[TAG_GIT_COMMIT] = commit
    if job_id:
        run_tags[TAG_JOB] = job_id
    run_tags.update(environment_tags(config))
    run_tags.update(tags or {})
    run = client.create_run(experiment_id, run_name=run_name or config.pipeline.name, tags=run_tags)
    params = [Param(k, v) for k, v in flatten_config(config).items()]
    for start in range(0, len(params), _PARAM_BATCH):
        client.log_batch(run.info.run_id, params=params[start : start + _PARAM_BATCH])
    logger.info("pipeline run %s opened in MLflow", run.info.run_id)
    return run.info.run_id


def resolve_parent_run(
    config: DubOpsConfig, parent_run_id: str, job_id: str, data_version: str
) -> str:
    """The given parent run id, else the run of this KFP job (opened here on first use)."""
    if parent_run_id:
        return parent_run_id
    found = find_job_run(config, job_id)
    return found or open_parent_run(config, data_version, job_id=job_id)


def find_job_run(config: DubOpsConfig, job_id: str) -> str | None:
    """The parent run tagged with this KFP job id, if one was opened."""
    if not job_id:
        return None
    client, experiment_id = _client(config)
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{TAG_JOB}` = '{job_id}'", max_results=1
    )
    return runs[0].info.run_id if runs else None


def close_parent_run(config: DubOpsConfig, run_id: str, status: str) -> None:
    """End the parent run (FINISHED, FAILED or KILLED) unless it has ended already."""
    client, _ = _client(config)
    if client.get_run(run_id).info.status != "RUNNING":
        return
    client.set_terminated(run_id, status)
    logger.info("pipeline run %s ended %s", run_id, status)


def run_status(config: DubOpsConfig, run_id: str) -> str:
    client, _ = _client(config)
    return client.get_run(run_id).info.status
