"""``dubops pipeline run``: the training pipeline executed here through ``kfp.local``.

The same DAG as on Kubeflow, each step a subprocess of this Python
(``SubprocessRunner(use_venv=False)``: the steps import the installed package). Before
submitting, this opens the parent MLflow run (its id becomes the ``parent_run_id``
parameter); afterwards it makes sure the run ended (the exit handler ends it; a
Ctrl-C here ends it KILLED) and reads what each step did from the artifact store.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from dubops.components.store import ArtifactStore, RunEvent
from dubops.config import DubOpsConfig

logger = logging.getLogger(__name__)

# The steps train small torch models on CPUs: glibc returning freed memory to the system
# and asking for it again made that 10x slower here (DESIGN.md, "CPU training speed").
# The steps inherit this process's environment.
TRAINING_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "33554432",
    "MALLOC_TRIM_THRESHOLD_": "68719476736",
    "MALLOC_TOP_PAD_": "536870912",
}


@dataclass
class LocalRun:
    """How a local pipeline run went."""

    run_id: str
    status: str  # the parent MLflow run's: FINISHED, FAILED or KILLED
    store: Path
    seconds: float
    events: list[RunEvent] = field(default_factory=list)
    error: str | None = None
    log: Path | None = None
    gate: dict | None = None  # the promotion gate's verdict: passed, reason, challenger, champion

    @property
    def ok(self) -> bool:
        return self.status == "FINISHED"


def steps_config(config: DubOpsConfig, base_dir: Path | None = None) -> DubOpsConfig:
    """The config the steps get: the MLflow store and warm-start checkpoints anchored to
    absolute paths, so every step (whatever its working folder) logs into the store this
    process opened the run in and reads the checkpoints the user named."""
    from dubops.tracking import resolve_artifact_location, resolve_tracking_uri

    uri = resolve_tracking_uri(config.tracking, base_dir)
    location = resolve_artifact_location(config.tracking, uri, base_dir) or (
        config.tracking.artifact_location
    )
    tracking = config.tracking.model_copy(
        update={"tracking_uri": uri, "artifact_location": location}
    )
    # Warm-start checkpoints named relative to where the run was started (configs/demo.yaml).
    speech = config.speech.model_copy(
        update={
            name: str((base_dir or Path.cwd()) / path)
            for name in ("pretrained_dit", "pretrained_controlnet")
            if (path := getattr(config.speech, name)) and not Path(path).is_absolute()
        }
    )
    return config.model_copy(update={"tracking": tracking, "speech": speech})


def run_locally(
    config: DubOpsConfig,
    data_dir: str | Path,
    store_dir: str | Path,
    run_name: str | None = None,
    verbose: bool = False,
) -> LocalRun:
    """Run the whole training pipeline on this machine.

    Args:
        config: the resolved configuration (passed to every step as JSON).
        data_dir: the corpus folder.
        store_dir: the persistent artifact store (step outputs, cache markers, run records;
            kfp.local's own outputs go to ``<store>/kfp``).
        run_name: the parent MLflow run's name (default: the pipeline's name).
        verbose: echo every line the steps print (they always go to
            ``<store>/runs/<run id>/steps.log``).

    Returns:
        A :class:`LocalRun`; a failed step does not raise (see ``status`` and ``error``),
        Ctrl-C does, after ending the parent run KILLED.

    Raises:
        StoreBusyError: another run holds the store.
    """
    began = time.time()
    data, store = Path(data_dir).resolve(), Path(store_dir).resolve()
    with ArtifactStore(store).exclusive():
        return _run(config, data, store, run_name, verbose, began)


def _run(
    config: DubOpsConfig,
    data: Path,
    store: Path,
    run_name: str | None,
    verbose: bool,
    began: float,
) -> LocalRun:
    from kfp import local

    from dubops.components.parent_run import close_parent_run, open_parent_run, run_status
    from dubops.components.runtime import data_version_of
    from dubops.pipelines.step_log import step_log
    from dubops.pipelines.training import build_pipeline

    config = steps_config(config)
    version = data_version_of(data)
    for key, value in TRAINING_ENV.items():
        os.environ.setdefault(key, value)
    run_id = open_parent_run(
        config,
        version,
        run_name=run_name,
        tags={"dubops.pipeline_store": str(store), "dubops.runner": "kfp.local"},
    )
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(store / "kfp"),
        raise_on_error=True,
    )
    pipeline = build_pipeline(config, packages_to_install=[])
    error = None
    log = ArtifactStore(store).run_dir(run_id) / "steps.log"
    try:
        with warnings.catch_warnings(), step_log(log, verbose):
            # kfp.local says the image and the GPU settings have no effect here: known.
            warnings.filterwarnings("ignore", message=".*(image|have no effect).*")
            pipeline(
                config_json=config.model_dump_json(),
                data_dir=str(data),
                store_dir=str(store),
                parent_run_id=run_id,
            )
    except KeyboardInterrupt:
        close_parent_run(config, run_id, "KILLED")
        raise
    except RuntimeError as exc:  # kfp.local: a task failed (its log is above)
        error = str(exc)
    # The exit handler ended the run; if it could not, end it here.
    close_parent_run(config, run_id, "FAILED" if error else "FINISHED")
    events = ArtifactStore(store).run_events(run_id)
    return LocalRun(
        run_id=run_id,
        status=run_status(config, run_id),
        store=store,
        seconds=round(time.time() - began, 1),
        events=events,
        error=error,
        log=log,
        gate=_gate_verdict(ArtifactStore(store), events),
    )


def _gate_verdict(store: ArtifactStore, events: list[RunEvent]) -> dict | None:
    for event in events:
        if event.step == "promotion_gate" and event.status in ("ran", "cached"):
            record = store.lookup(event.step, event.key)
            return None if record is None else record.values
    return None
