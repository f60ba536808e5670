"""What every pipeline step does around its work: config, cache, MLflow, artifacts.

A component calls :func:`run_step` with its KFP inputs and outputs and a ``body`` that
calls the library function the CLI calls. ``run_step``:

1. parses the config (the resolved config as JSON: the one way steps get it),
2. computes the step's cache key (inputs' keys + config slice + data version +
   package version) and looks for a finished record in the artifact store,
3. opens the step's MLflow run under the pipeline's parent run,
4. returns the stored outputs at once (cached) or runs ``body`` into the step's store
   folder and writes the completion marker last,
5. fills the KFP output artifacts (files, store path and key in their metadata) and
   records what it did in ``<store>/runs/<run>/<step>.json``.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dubops.components.store import ArtifactStore, RunEvent, StepRecord, cache_key
from dubops.config import DubOpsConfig

logger = logging.getLogger(__name__)


@dataclass
class StepContext:
    """What a step body gets: the config, the corpus, its inputs and its store folder."""

    step: str
    config: DubOpsConfig
    data_dir: Path
    data_version: str
    out_dir: Path
    inputs: dict[str, Path]
    resume: bool  # the folder holds an unfinished attempt: trainers continue from it
    tracker: Any
    parent_run_id: str

    def input(self, name: str) -> Path:
        return self.inputs[name]


@dataclass
class StepResult:
    """What a step body returns.

    Attributes:
        exports: KFP output name -> path relative to the step folder.
        metrics: flat metrics, logged to the step's MLflow run (and kept for cached runs).
        values: plain outputs the component returns (JSON-able).
    """

    exports: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepOutcome:
    record: StepRecord
    cached: bool
    parent_run_id: str
    out_dir: Path


def parse_config(config_json: str) -> DubOpsConfig:
    """The resolved configuration a pipeline run passes to every step."""
    from pydantic import ValidationError

    from dubops.config import ConfigError

    try:
        return DubOpsConfig.model_validate_json(config_json)
    except ValidationError as exc:
        lines = [f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("config_json parameter: " + "; ".join(lines)) from None


def data_version_of(data_dir: Path) -> str:
    from dubops.data.layout import CorpusLayout, manifest_hash

    manifest = CorpusLayout(data_dir).manifest
    if not manifest.is_file():
        raise FileNotFoundError(
            f"data_dir {data_dir}: no manifest.parquet; pass a corpus folder "
            "(`dubops data synth --out DIR`)"
        )
    return manifest_hash(manifest)


def _input_ref(name: str, artifact: Any) -> tuple[str, Path]:
    meta = artifact.metadata or {}
    if "cache_key" not in meta or "store_path" not in meta:
        raise ValueError(
            f"input {name!r} carries no store_path/cache_key: it was not made by a "
            "dubops pipeline step"
        )
    return str(meta["cache_key"]), Path(meta["store_path"])


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # the store and KFP's outputs usually share a disk
    except OSError:
        shutil.copy2(src, dst)


def _fill_artifact(artifact: Any, path: Path, meta: dict[str, Any]) -> None:
    """A KFP output: the top-level files of ``path`` (weights and configs, not checkpoint
    folders) or the file itself, plus where the full output lives in the store."""
    artifact.metadata.update({**meta, "store_path": str(path)})
    target = Path(artifact.path)
    if path.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        for item in path.iterdir():
            if item.is_file() and not item.name.startswith("."):
                _link_or_copy(item, target / item.name)
    elif path.is_file():
        _link_or_copy(path, target)


def _say(message: str) -> None:
    # stdout: kfp.local streams each step's stdout under its task name.
    print(f"[dubops pipeline] {message}", flush=True)


def run_step(
    step: str,
    *,
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    body: Callable[[StepContext], StepResult],
    inputs: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    data_dir: str | None = None,
    job_id: str = "",
    still_valid: Callable[[StepRecord, DubOpsConfig], bool] | None = None,
    metrics_to_parent: bool = False,
    extra_key: dict[str, Any] | None = None,
) -> StepOutcome:
    """Run (or reuse) one step; see the module docstring.

    Args:
        step: the step name (its store folder and MLflow run name).
        config_json: the resolved config (``DubOpsConfig.model_dump_json()``).
        store_dir: the persistent artifact store.
        parent_run_id: the pipeline's MLflow run ('' lets the first step open one).
        body: the work; gets a :class:`StepContext`, returns a :class:`StepResult`.
        inputs: KFP input artifacts by name (made by earlier steps).
        outputs: KFP output artifacts by name; ``Metrics`` ones get the flat metrics.
        data_dir: the corpus (first step); later steps read it from the ``corpus`` input.
        job_id: the KFP job id (finds or opens the parent run of a cluster run).
        still_valid: checks a stored record against the world outside the store
            (the registry): False runs the step again.
        metrics_to_parent: log the metrics to the parent run as well.
        extra_key: plain inputs that enter the cache key (e.g. a registered version).
    """
    from dubops import __version__
    from dubops.components.parent_run import (
        TAG_CACHE_KEY,
        TAG_CACHED,
        TAG_PARENT,
        TAG_STEP,
        resolve_parent_run,
    )
    from dubops.components.slices import config_slice
    from dubops.run_environment import one_thread_by_default
    from dubops.tracking import start_run

    started = time.time()
    config = parse_config(config_json)
    inputs, outputs = inputs or {}, outputs or {}
    refs = {name: _input_ref(name, art) for name, art in inputs.items()}
    if data_dir is None:
        corpus = inputs["corpus"].metadata
        data_dir, data_version = corpus["data_dir"], corpus["data_version"]
    else:
        data_version = data_version_of(Path(data_dir))
    parts = {
        "inputs": {name: key for name, (key, _) in sorted(refs.items())},
        "config": config_slice(config, step),
        "data_version": data_version,
        "package": __version__,
        **({"extra": extra_key} if extra_key else {}),
    }
    key = cache_key(step, parts)
    store = ArtifactStore(store_dir)
    out_dir = store.step_dir(step, key)
    parent = resolve_parent_run(config, parent_run_id, job_id, data_version)
    record = store.lookup(step, key)
    if record is not None and still_valid is not None and not still_valid(record, config):
        _say(f"{step}: stored outputs no longer hold, running again")
        store.invalidate(step, key)
        record = None
    cached = record is not None
    _say(f"{step}: {'cached' if cached else 'running'} (key {key})")
    tags = {TAG_PARENT: parent, TAG_STEP: step, TAG_CACHE_KEY: key, TAG_CACHED: str(cached)}
    try:
        with start_run(config, step, data_version=data_version, tags=tags) as tracker:
            if record is None:
                resume = out_dir.is_dir()
                out_dir.mkdir(parents=True, exist_ok=True)
                ctx = StepContext(
                    step=step,
                    config=config,
                    data_dir=Path(data_dir),
                    data_version=data_version,
                    out_dir=out_dir,
                    inputs={name: path for name, (_, path) in refs.items()},
                    resume=resume,
                    tracker=tracker,
                    parent_run_id=parent,
                )
                with one_thread_by_default():
                    result = body(ctx)
                    # the threads the stage trained with (the block restores the caller's)
                    threads = sys.modules["torch"].get_num_threads()
                tracker.set_tags({"dubops.env.torch_threads": str(threads)})
                record = StepRecord(
                    step=step,
                    key=key,
                    exports=result.exports,
                    metrics={k: float(v) for k, v in result.metrics.items()},
                    values=result.values,
                    seconds=round(time.time() - started, 2),
                    parts=parts,
                )
                store.complete(record)
            if record.metrics:
                tracker.log_metrics(record.metrics)
                if metrics_to_parent:
                    from dubops.tracking import Tracker

                    Tracker(parent, tracker.client).log_metrics(record.metrics)
    except BaseException as exc:
        status = "killed" if isinstance(exc, KeyboardInterrupt) else "failed"
        event = RunEvent(step, key, status, round(time.time() - started, 2), started, repr(exc))
        store.record_event(parent, event)
        _say(f"{step}: {status} after {event.seconds} s: {exc!r}")
        raise
    meta = {
        "cache_key": key,
        "step": step,
        "cached": cached,
        "data_dir": str(data_dir),
        "data_version": data_version,
    }
    for name, artifact in outputs.items():
        if name in record.exports:
            _fill_artifact(artifact, out_dir / record.exports[name], meta)
        elif hasattr(artifact, "log_metric"):
            for metric, value in record.metrics.items():
                artifact.log_metric(metric, value)
        else:
            raise ValueError(f"{step}: output {name!r} was not exported by the step")
    seconds = round(time.time() - started, 2)
    status = "cached" if cached else "ran"
    store.record_event(parent, RunEvent(step, key, status, seconds, started))
    _say(f"{step}: {status} in {seconds} s -> {out_dir}")
    sys.stdout.flush()
    return StepOutcome(record=record, cached=cached, parent_run_id=parent, out_dir=out_dir)
