"""The one MLflow helper: every trainer, evaluation and component logs through it.

A run opened by :func:`start_run` carries the whole configuration as params and
the tags that make it reproducible: the data version (the manifest hash), the
config hash, the preset and the git commit. Logging goes straight to the
store (no autolog, no system-metrics thread) so it stays fast on the CPU
machines.

One machine: ``sqlite:///mlruns.db`` and an ``mlartifacts/`` folder, both
relative to ``base_dir`` (default: the working directory). A cluster: any
MLflow server URI, whose artifact root the server decides.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dubops.config import DubOpsConfig, TrackingConfig, config_hash, flatten_config

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

TAG_DATA_VERSION = "dubops.data_version"
TAG_CONFIG_HASH = "dubops.config_hash"
TAG_PRESET = "dubops.preset"
# MLflow's own tag name, so the UI shows the commit beside the run.
TAG_GIT_COMMIT = "mlflow.source.git.commit"


def configured_uri(config: TrackingConfig) -> str:
    """``tracking.tracking_uri`` when set in a config or ``--set``, else ``$MLFLOW_TRACKING_URI``.

    MLflow's own environment variable is how a cluster (or a user) points every
    tool at one server; an explicit setting in our config still wins over it, and
    with neither the local SQLite default applies.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    # mlflow.set_tracking_uri() exports the variable itself (for subprocesses): a value
    # this process set is not a user's choice and must not outlive the config it came from.
    if env and env not in _SET_HERE and "tracking_uri" not in config.model_fields_set:
        return env
    return config.tracking_uri


_SET_HERE: set[str] = set()


def _set_tracking_uri(uri: str) -> None:
    import mlflow

    _SET_HERE.add(uri)
    mlflow.set_tracking_uri(uri)


def resolve_tracking_uri(
    config: TrackingConfig, base_dir: Path | None = None, create: bool = True
) -> str:
    """The tracking URI with a relative SQLite path anchored at ``base_dir``.

    ``sqlite:///mlruns.db`` names a path relative to the process's working
    directory; anchoring it makes a run land in the same store whichever
    folder a component or test starts in. ``create=False`` (read-only
    commands) leaves the filesystem alone.
    """
    uri = configured_uri(config)
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        db = Path(uri.removeprefix(prefix))
        if not db.is_absolute():
            db = (Path(base_dir or Path.cwd()) / db).resolve()
        if create:
            db.parent.mkdir(parents=True, exist_ok=True)
        return f"{prefix}{db}"
    if "://" not in uri:  # a bare folder: MLflow's file store
        return Path(base_dir or Path.cwd()).joinpath(uri).resolve().as_uri()
    return uri


def open_store_read_only(config: TrackingConfig, base_dir: Path | None = None) -> str:
    """Point MLflow at an existing store without creating or changing anything.

    Read-only commands (``registry list``, ``dub-clip``) must not leave an empty
    ``mlruns.db`` behind because they looked: a local store that does not exist
    is an error that names where it was looked for and how to point elsewhere.

    Raises:
        TrackingStoreError: a local SQLite or file store that does not exist.
    """
    uri = require_store(config, base_dir)
    _set_tracking_uri(uri)
    return uri


def require_store(config: TrackingConfig, base_dir: Path | None = None) -> str:
    """The resolved URI; a local store that does not exist is an error (no MLflow import).

    Raises:
        TrackingStoreError: a local SQLite or file store that does not exist.
    """
    from dubops.errors import TrackingStoreError

    uri = resolve_tracking_uri(config, base_dir, create=False)
    local: Path | None = None
    if uri.startswith("sqlite:///"):
        local = Path(uri.removeprefix("sqlite:///"))
    elif uri.startswith("file:"):
        from urllib.parse import unquote, urlparse

        local = Path(unquote(urlparse(uri).path))
    if local is not None and not local.exists():
        raise TrackingStoreError(
            f"no MLflow store at {uri} (nothing was tracked or registered there); run "
            "`dubops pipeline run`, or point MLFLOW_TRACKING_URI (or --set "
            "tracking.tracking_uri=...) at the store that holds the models"
        )
    return uri


def resolve_artifact_location(
    config: TrackingConfig, tracking_uri: str, base_dir: Path | None = None
) -> str | None:
    """The experiment's artifact root as a URI, or None to let a server choose.

    A relative folder means a local folder only when the store is local
    (SQLite or files); against a tracking server it is ignored so the server's
    own artifact root (e.g. S3) applies.
    """
    loc = config.artifact_location
    if "://" in loc:
        return loc
    if not tracking_uri.startswith(("sqlite:", "file:")):
        return None
    path = Path(loc)
    if not path.is_absolute():
        path = Path(base_dir or Path.cwd()) / path
    return path.resolve().as_uri()


def configure_tracking(config: TrackingConfig, base_dir: Path | None = None) -> str:
    """Point MLflow at the configured store and make sure the experiment exists.

    Sets the process-wide tracking URI (an entry-point concern, so it happens
    here and not at import) and returns the experiment id.
    """
    import mlflow

    uri = resolve_tracking_uri(config, base_dir)
    _set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = resolve_artifact_location(config, uri, base_dir)
    try:
        return client.create_experiment(config.experiment, artifact_location=artifact_location)
    except mlflow.exceptions.MlflowException:
        # Another process created it between our look-up and create.
        experiment = client.get_experiment_by_name(config.experiment)
        if experiment is None:
            raise
        return experiment.experiment_id


def git_commit(cwd: Path | None = None) -> str | None:
    """``git rev-parse HEAD`` of the source tree, or None outside a repository."""
    folder = cwd or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


class Tracker:
    """Logs into one run; every method names the run id, so threads cannot mix runs."""

    def __init__(self, run_id: str, client: MlflowClient) -> None:
        self.run_id = run_id
        self.client = client

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log scalars (floats, ints, 0-d tensors) in one batch write."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Extra params beyond the config (e.g. the number of training clips)."""
        from mlflow.entities import Param

        batch = [Param(k, str(v)) for k, v in params.items()]
        self.client.log_batch(self.run_id, params=batch)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, str(v)) for k, v in tags.items()]
        self.client.log_batch(self.run_id, tags=batch)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a file, or a folder's contents, into the run's artifacts."""
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_dict(self, data: Any, artifact_file: str) -> None:
        """JSON or YAML (by the file's suffix) of a dict or list."""
        self.client.log_dict(self.run_id, data, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """A matplotlib (or plotly) figure as an image artifact."""
        self.client.log_figure(self.run_id, figure, artifact_file)

    @property
    def artifact_uri(self) -> str:
        return self.client.get_run(self.run_id).info.artifact_uri


@contextlib.contextmanager
def start_run(
    config: DubOpsConfig,
    run_name: str,
    data_version: str | None = None,
    tags: Mapping[str, Any] | None = None,
    nested: bool = False,
    base_dir: Path | None = None,
) -> Iterator[Tracker]:
    """Open a run with the config as params and the reproducibility tags.

    Args:
        config: the whole configuration; logged flattened as params.
        run_name: the run's display name (e.g. the stage, ``"dit_pretrain"``).
        data_version: the corpus manifest hash
            (``manifest_hash(CorpusLayout(root).manifest)``).
        tags: extra tags; they win over the defaults.
        nested: open as a child of the active run (pipeline stage in a pipeline run).
        base_dir: anchors relative SQLite and artifact paths (default: cwd).

    Yields:
        a :class:`Tracker` on the new run. The run ends FINISHED, or FAILED when
        the block raises (KILLED on Ctrl-C); the exception propagates.
    """
    import mlflow

    from dubops.run_environment import environment_tags

    experiment_id = configure_tracking(config.tracking, base_dir)
    run_tags: dict[str, str] = {
        TAG_CONFIG_HASH: config_hash(config),
        TAG_PRESET: config.preset,
    }
    if data_version is not None:
        run_tags[TAG_DATA_VERSION] = data_version
    commit = git_commit()
    if commit is not None:
        run_tags[TAG_GIT_COMMIT] = commit
    run_tags.update(environment_tags(config))
    run_tags.update({k: str(v) for k, v in (tags or {}).items()})

    active = mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name,
        nested=nested,
        tags=run_tags,
        log_system_metrics=False,
    )
    tracker = Tracker(active.info.run_id, mlflow.MlflowClient())
    status = "FINISHED"
    try:
        tracker.log_params(flatten_config(config))
        yield tracker
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        mlflow.end_run(status)
        logger.debug("run %s (%s) ended %s", run_name, tracker.run_id, status)
