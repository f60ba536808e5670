"""The MLflow model registry as DubOps reads it: versions, aliases and the tags we keep.

One registered model (``config.registry.model_name``). A version's evaluation is
stored in its tags (``metric.<name>``, ``baseline.<system>.<name>``) so the gate
and ``dubops registry compare`` need nothing but the registry; the champion
history lives in a registered-model tag (a JSON list) so rollback survives a
restart. Every helper resolves the store from ``config.tracking`` through
:mod:`dubops.tracking`.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from dubops.errors import DubOpsError

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    from dubops.config import DubOpsConfig

CHAMPION = "champion"
CHALLENGER = "challenger"
ALIASES = (CHAMPION, CHALLENGER)
METRIC_TAG = "metric."
BASELINE_TAG = "baseline."
HISTORY_TAG = "dubops.champion_history"
TAG_RUN_ID = "run_id"
TAG_PIPELINE_RUN_ID = "pipeline_run_id"
TAG_DATA_VERSION = "data_version"
TAG_LIBRARY_VERSION = "library_version"
TAG_BUNDLE_HASH = "bundle_hash"
TAG_GIT_COMMIT = "git_commit"


class RegistryError(DubOpsError, ValueError):
    """An unknown version or alias, an empty registry, a refused change; says the fix."""


def registry_client(config: DubOpsConfig, read_only: bool = False) -> MlflowClient:
    """A client on the configured store (the tracking URI is set process-wide too).

    ``read_only`` (listing, loading a model) opens an existing store only: looking
    must not create an empty ``mlruns.db`` or an experiment.
    """
    from dubops.errors import TrackingStoreError
    from dubops.tracking import configure_tracking, open_store_read_only, require_store

    if read_only:
        try:  # a file check before MLflow's seconds of import
            require_store(config.tracking)
        except TrackingStoreError as exc:
            raise RegistryError(
                f"the registry has no model {config.registry.model_name!r} yet: {exc}"
            ) from None
    import mlflow

    if not read_only:
        configure_tracking(config.tracking)
        return mlflow.MlflowClient()
    return mlflow.MlflowClient(open_store_read_only(config.tracking))


def model_exists(client: MlflowClient, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        return False
    return True


def require_model(client: MlflowClient, name: str) -> None:
    """A :class:`RegistryError` when nothing has been registered under ``name`` yet."""
    if not model_exists(client, name):
        raise RegistryError(
            f"the registry has no model {name!r} yet (store {client.tracking_uri}); "
            "run `dubops pipeline run` (it registers one) or register a bundle first"
        )


def list_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of ``name``, oldest first."""
    require_model(client, name)
    versions = client.search_model_versions(f"name='{name}'")
    return sorted(versions, key=lambda v: int(v.version))


def alias_version(client: MlflowClient, name: str, alias: str) -> int | None:
    """The version an alias points at, or None when it is not set."""
    aliases = client.get_registered_model(name).aliases or {}
    value = aliases.get(alias)
    return None if value is None else int(value)


def resolve_version(client: MlflowClient, name: str, ref: str | int) -> ModelVersion:
    """``3``, ``"3"``, ``"v3"``, ``"champion"`` or ``"challenger"`` -> that version.

    Raises:
        RegistryError: an empty registry, an alias that is not set, a version that
            does not exist (the message lists what does).
    """
    from mlflow.exceptions import MlflowException

    require_model(client, name)
    text = str(ref).strip()
    if text.lower().startswith("v") and text[1:].isdigit():
        text = text[1:]
    if not text.isdigit():
        number = alias_version(client, name, text)
        if number is None:
            set_aliases = client.get_registered_model(name).aliases or {}
            raise RegistryError(
                f"{ref!r} is neither a version number nor a set alias of {name!r}; "
                f"aliases set: {dict(set_aliases) or 'none'}"
            )
        text = str(number)
    try:
        return client.get_model_version(name, text)
    except MlflowException:
        known = [int(v.version) for v in list_versions(client, name)]
        raise RegistryError(
            f"{name!r} has no version {text}; versions: {known or 'none'}"
        ) from None


def version_metrics(version: ModelVersion) -> dict[str, float]:
    """The evaluation metrics stored on a version (``metric.<name>`` tags); NaNs dropped."""
    return _floats(version.tags, METRIC_TAG)


def version_baselines(version: ModelVersion) -> dict[str, dict[str, float]]:
    """``{system: {metric: value}}`` from ``baseline.<system>.<metric>`` tags."""
    out: dict[str, dict[str, float]] = {}
    for key, value in _floats(version.tags, BASELINE_TAG).items():
        system, _, metric = key.partition(".")
        if metric:
            out.setdefault(system, {})[metric] = value
    return out


def metric_tags(
    metrics: dict[str, float], baselines: dict[str, dict[str, float]] | None
) -> dict[str, str]:
    """Version tags holding the metrics and baselines (``repr`` keeps every float digit)."""
    tags = {f"{METRIC_TAG}{k}": repr(float(v)) for k, v in metrics.items()}
    for system, values in (baselines or {}).items():
        if "." in system:
            raise ValueError(f"baseline name {system!r} must not contain a dot")
        for k, v in values.items():
            tags[f"{BASELINE_TAG}{system}.{k}"] = repr(float(v))
    return tags


def read_history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """The champion history (oldest first) from the registered model's tag."""
    raw = (client.get_registered_model(name).tags or {}).get(HISTORY_TAG)
    if not raw:
        return []
    try:
        history = json.loads(raw)
    except json.JSONDecodeError:
        raise RegistryError(
            f"the {HISTORY_TAG} tag of {name!r} is not JSON; fix or delete it in the MLflow UI"
        ) from None
    return [h for h in history if isinstance(h, dict) and "version" in h]


def write_history(
    client: MlflowClient, name: str, history: list[dict[str, Any]], limit: int
) -> None:
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-limit:]))


def version_exists(client: MlflowClient, name: str, version: int) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(name, str(version))
    except MlflowException:
        return False
    return True


def _floats(tags: dict[str, str] | None, prefix: str) -> dict[str, float]:
    out = {}
    for key, value in (tags or {}).items():
        if key.startswith(prefix):
            try:
                number = float(value)
            except ValueError:
                continue
            if math.isfinite(number):
                out[key[len(prefix) :]] = number
    return out
