"""Registry URIs: ``models:/NAME@ALIAS`` and ``models:/NAME/VERSION``.

Loading a registered model is :func:`dubops.inference.loading.load_pipeline`.
"""

from __future__ import annotations

from dubops.registry.store import RegistryError

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
