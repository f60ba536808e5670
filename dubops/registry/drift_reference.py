"""Where a model version's drift reference lives, found without loading the model.

A registered version's bundle carries ``monitoring/drift_reference.json``; only that
file is downloaded (the bundle's place in the logged model is read from its
``MLmodel`` file). A bundle folder or a reference file serve too (no version then).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig
    from dubops.monitoring.reference import ReferenceProfile


@dataclass
class ReferenceSource:
    """Where the reference came from: a registered version, a bundle or a reference file."""

    uri: str
    reference: ReferenceProfile
    name: str = ""
    version: str = ""

    @property
    def served_as(self) -> str:
        """The version as servers write it in the log (``dubbing/3``); "" for files."""
        return f"{self.name}/{self.version}" if self.version else ""


def find_reference(config: DubOpsConfig, uri: str, reference: Path | None) -> ReferenceSource:
    """The reference to compare with, and the registered version when ``uri`` names one."""
    from dubops.errors import InputError
    from dubops.monitoring.reference import FILE_NAME, ReferenceProfile
    from dubops.registry.bundle import MONITORING_DIR
    from dubops.registry.loading import MODELS_SCHEME

    if uri.startswith(MODELS_SCHEME):
        return _registered(config, uri, reference)
    path = Path(uri)
    if reference is not None:
        return ReferenceSource(uri, ReferenceProfile.load(reference))
    if path.is_file():
        return ReferenceSource(uri, ReferenceProfile.load(path))
    if (path / "bundle.json").is_file():
        bundled = path / MONITORING_DIR / FILE_NAME
        if not bundled.is_file():
            raise InputError(
                f"--model {uri}: the bundle has no {MONITORING_DIR}/{FILE_NAME} (assembled "
                "before references existed); make one with `dubops monitor reference` and "
                "pass it with --reference"
            )
        return ReferenceSource(uri, ReferenceProfile.load(bundled))
    raise InputError(
        f"--model {uri}: neither a registry URI (models:/dubbing@champion), a bundle folder "
        f"(bundle.json) nor a {FILE_NAME}"
    )


def _registered(config: DubOpsConfig, uri: str, reference: Path | None) -> ReferenceSource:
    """Resolve ``models:/NAME@ALIAS`` and download only its bundle's drift reference."""
    import mlflow
    from mlflow.models import Model

    from dubops.errors import InputError
    from dubops.monitoring.reference import FILE_NAME, ReferenceProfile
    from dubops.registry.bundle import MONITORING_DIR
    from dubops.registry.loading import parse_models_uri
    from dubops.registry.store import registry_client, resolve_version

    name, ref = parse_models_uri(uri)
    client = registry_client(config, read_only=True)
    version = str(resolve_version(client, name, ref).version)
    if reference is not None:
        return ReferenceSource(uri, ReferenceProfile.load(reference), name, version)
    root = client.get_model_version_download_uri(name, version).rstrip("/")
    with tempfile.TemporaryDirectory(prefix="dubops-reference-") as tmp:
        mlmodel = mlflow.artifacts.download_artifacts(f"{root}/MLmodel", dst_path=tmp)
        flavor = Model.load(mlmodel).flavors.get("python_function", {})
        bundle = flavor.get("artifacts", {}).get("bundle", {}).get("path")
        if not bundle:
            raise InputError(f"--model {uri}: version {version} is not a DubOps bundle model")
        try:
            path = mlflow.artifacts.download_artifacts(
                f"{root}/{bundle}/{MONITORING_DIR}/{FILE_NAME}", dst_path=tmp
            )
        except (OSError, mlflow.exceptions.MlflowException):
            raise InputError(
                f"--model {uri}: version {version}'s bundle has no drift reference (registered "
                f"before references existed); make one with `dubops monitor reference --model "
                f"models:/{name}/{version} --data CORPUS` and pass it with --reference"
            ) from None
        return ReferenceSource(uri, ReferenceProfile.load(path), name, version)
