"""A :class:`~dubops.dubbing.DubbingPipeline` from a bundle folder or a registered model.

``models:/dubbing@champion`` (or ``models:/dubbing/3``) goes through
``mlflow.pyfunc.load_model``: the same code path a model server takes, so the
CLI dubs with exactly what the registry serves.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dubops.errors import InputError
from dubops.registry.store import RegistryError, registry_client, resolve_version

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig
    from dubops.dubbing import DubbingPipeline

MODELS_SCHEME = "models:/"


def parse_models_uri(uri: str) -> tuple[str, str]:
    """``models:/name@alias`` -> (name, alias); ``models:/name/3`` -> (name, "3")."""
    body = uri[len(MODELS_SCHEME) :].strip("/")
    if "@" in body:
        name, _, ref = body.partition("@")
    else:
        name, _, ref = body.partition("/")
    if not name or not ref:
        raise RegistryError(
            f"--model {uri!r}: write models:/NAME@ALIAS (e.g. models:/dubbing@champion) "
            "or models:/NAME/VERSION"
        )
    return name, ref


def load_pipeline(
    config: DubOpsConfig, model: str, library_dir: str | Path | None = None
) -> tuple[DubbingPipeline, dict[str, Any]]:
    """``(pipeline, what was loaded)`` from a bundle folder or a ``models:/`` URI.

    Raises:
        RegistryError: an empty registry, an unknown version or alias, a bad URI.
        BundleError / LibraryError: an incomplete bundle, a library of another version.
    """
    if model.startswith(MODELS_SCHEME):
        import mlflow

        name, ref = parse_models_uri(model)
        client = registry_client(config, read_only=True)
        version = resolve_version(client, name, ref)
        overrides = {"backend": config.library.backend}
        if library_dir is not None:
            overrides["library_dir"] = str(library_dir)
        loaded = mlflow.pyfunc.load_model(
            f"{MODELS_SCHEME}{name}/{version.version}", model_config=overrides
        )
        pipeline = loaded.unwrap_python_model().pipeline
        info: dict[str, Any] = {"model": model, "name": name, "version": int(version.version)}
    else:
        from dubops.dubbing import DubbingPipeline

        folder = Path(model)
        if not folder.is_dir():
            raise InputError(
                f"--model {model}: not a bundle folder; give one or a registry URI such as "
                "models:/dubbing@champion"
            )
        pipeline = DubbingPipeline.from_bundle(folder, library_dir, config.library.backend)
        info = {"model": str(folder)}
    bundle = pipeline.bundle
    info |= {
        "bundle_hash": bundle.bundle_hash,
        "library_version": bundle.library_version,
        "data_version": bundle.data_version,
    }
    return pipeline, info
