"""``dubops pipeline schedule``: retrain on a schedule, as a Kubeflow recurring run.

Compiles the pipeline for the configuration, uploads it (a new pipeline, or a new
version of the existing one, named after the config hash), makes sure the experiment
exists, and creates the recurring run through ``kfp.Client`` (the KFP v2beta1 REST API).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dubops.config import DubOpsConfig, config_hash
from dubops.errors import DubOpsError
from dubops.pipelines.cron import validate_cron


class KfpServerError(DubOpsError, ValueError):
    """The KFP server could not be reached or refused a request (names the host)."""


@dataclass(frozen=True)
class Schedule:
    """What was created on the Kubeflow side."""

    host: str
    cron: str
    pipeline_id: str
    pipeline_version_id: str
    experiment_id: str
    recurring_run_id: str
    name: str


def schedule_pipeline(
    config: DubOpsConfig,
    host: str,
    cron: str | None = None,
    experiment: str | None = None,
    namespace: str | None = None,
) -> Schedule:
    """Create a recurring run of the training pipeline on the KFP server at ``host``.

    Args:
        config: the configuration the scheduled runs use (compiled into the pipeline).
        host: the KFP API endpoint, e.g. ``http://ml-pipeline-ui.kubeflow:80``.
        cron: six-field cron (default ``pipeline.schedule.cron``); checked first.
        experiment: KFP experiment (default ``pipeline.schedule.experiment``).
        namespace: the user namespace of a multi-user Kubeflow.
    """
    import kfp

    from dubops.pipelines.compile import compile_pipeline

    settings = config.pipeline.schedule
    cron = validate_cron(cron or settings.cron)
    experiment = experiment or settings.experiment
    name = config.pipeline.name
    version_name = f"{name}-{config_hash(config)}-{time.strftime('%Y%m%d-%H%M%S')}"
    # The client prints links on stdout; stdout is kept for --json.
    with (
        tempfile.TemporaryDirectory() as tmp,
        contextlib.redirect_stdout(sys.stderr),
        _server_errors(host),
        warnings.catch_warnings(),
    ):
        warnings.filterwarnings("ignore", category=FutureWarning, module="kfp")
        package = compile_pipeline(config, Path(tmp) / "training.yaml")
        client = kfp.Client(host=host, **({"namespace": namespace} if namespace else {}))
        pipeline_id = client.get_pipeline_id(name)
        if pipeline_id is None:
            pipeline_id = client.upload_pipeline(
                str(package), pipeline_name=name, namespace=namespace
            ).pipeline_id
            versions = client.list_pipeline_versions(pipeline_id, sort_by="created_at desc")
            version_id = versions.pipeline_versions[0].pipeline_version_id
        else:
            version_id = client.upload_pipeline_version(
                str(package), pipeline_version_name=version_name, pipeline_id=pipeline_id
            ).pipeline_version_id
        experiment_id = client.create_experiment(experiment, namespace=namespace).experiment_id
        run = client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=f"{name} ({cron})",
            description=f"scheduled retraining, config {config_hash(config)}",
            cron_expression=cron,
            max_concurrency=settings.max_concurrency,
            no_catchup=not settings.catchup,
            pipeline_id=pipeline_id,
            version_id=version_id,
            enabled=True,
        )
    return Schedule(
        host=host,
        cron=cron,
        pipeline_id=pipeline_id,
        pipeline_version_id=version_id,
        experiment_id=experiment_id,
        recurring_run_id=run.recurring_run_id,
        name=f"{name} ({cron})",
    )


@contextlib.contextmanager
def _server_errors(host: str) -> Iterator[None]:
    """Connection failures and API refusals as one error that names the host."""
    from kfp_server_api.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise KfpServerError(
            f"--host {host}: cannot reach the Kubeflow Pipelines API ({reason}); "
            "check the URL (e.g. a port-forward of ml-pipeline-ui) and that it is up"
        ) from None
    except ApiException as exc:
        body = (exc.body or "")[:300] if isinstance(exc.body, str) else ""
        raise KfpServerError(
            f"--host {host}: the KFP API answered {exc.status} {exc.reason} {body}".rstrip()
        ) from None
