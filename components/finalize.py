"""The exit handler's step: end the parent MLflow run as the pipeline ended.

Kubeflow runs it after every other task, whatever happened, with the final status
of the exit handler's body (``dsl.PipelineTaskFinalStatus``): SUCCEEDED ends the
parent run FINISHED, a cancelled run KILLED, anything else FAILED.
"""

from __future__ import annotations

from typing import Any

_STATES = {"SUCCEEDED": "FINISHED", "CANCELED": "KILLED", "CANCELLED": "KILLED"}


def mlflow_status(state: str) -> str:
    """KFP's final task state -> MLflow's run status."""
    return _STATES.get(str(state).upper(), "FAILED")


def run_finalize(
    config_json: str, store_dir: str, parent_run_id: str, job_id: str, status: Any
) -> str:
    """Close the parent run and record the outcome in the store; return the MLflow status."""
    from dubops.components.parent_run import close_parent_run, find_job_run
    from dubops.components.runtime import parse_config
    from dubops.components.store import ArtifactStore

    config = parse_config(config_json)
    state = getattr(status, "state", None) or "FAILED"
    run_id = parent_run_id or find_job_run(config, job_id)
    result = mlflow_status(state)
    if run_id is None:
        print(f"[dubops pipeline] pipeline {state}; no parent MLflow run to close", flush=True)
        return result
    store = ArtifactStore(store_dir)
    # The steps' own records say which step failed and why; KFP's status says only that
    # the exit handler's body did.
    events = store.run_events(run_id)
    failed = [f"{e.step}: {e.error}" for e in events if e.status in ("failed", "killed")]
    error = "; ".join(failed) or getattr(status, "error_message", None)
    if result != "FINISHED" and error:
        import mlflow

        from dubops.tracking import configure_tracking

        configure_tracking(config.tracking)
        mlflow.MlflowClient().set_tag(run_id, "dubops.pipeline_error", str(error)[:5000])
    close_parent_run(config, run_id, result)
    store.record_final(run_id, str(state), error if result != "FINISHED" else None)
    print(f"[dubops pipeline] pipeline {state}: MLflow run {run_id} {result}", flush=True)
    return result
