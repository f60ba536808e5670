"""A batch drift report as an MLflow run, linked to the model version it watched.

The run goes to ``<tracking.experiment>-monitoring`` with the report's metrics and
files; the version gets a ``dubops.last_drift_run`` tag naming it, so the registry
shows when a version was last checked and where the report is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig
    from dubops.registry.drift_reference import ReferenceSource

LAST_DRIFT_RUN_TAG = "dubops.last_drift_run"
EXPERIMENT_SUFFIX = "-monitoring"


def log_drift_run(config: DubOpsConfig, source: ReferenceSource, summary: dict[str, Any]) -> str:
    """Log the report as a run of ``<experiment>-monitoring``; tag the version with it."""
    from dubops.monitoring.batch_report import summary_metrics
    from dubops.tracking import start_run

    tracking = config.tracking.model_copy(
        update={"experiment": config.tracking.experiment + EXPERIMENT_SUFFIX}
    )
    tags = {"dubops.model_uri": source.uri, "dubops.drift_detected": summary["drift_detected"]}
    if source.version:
        tags |= {"dubops.model_name": source.name, "dubops.model_version": source.version}
    with start_run(
        config.model_copy(update={"tracking": tracking}), "drift_report", tags=tags
    ) as tracker:
        tracker.log_metrics(summary_metrics(summary))
        for name in ("html", "summary", "evidently"):
            tracker.log_artifact(summary["files"][name], "drift_report")
        run_id = tracker.run_id
    if source.version:
        from dubops.registry.store import registry_client

        client = registry_client(config)
        client.set_model_version_tag(source.name, source.version, LAST_DRIFT_RUN_TAG, run_id)
    return run_id
