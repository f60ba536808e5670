"""Validate rendered manifests offline: core kinds against the Kubernetes API's own
schemas (``kubernetes-validate --strict``), custom resources against their vendored CRD
schema in its strict form (:mod:`dubops.deploy.crd_schemas`).

A kind with neither schema is a problem too: nothing we deploy goes unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dubops.deploy.crd_schemas import load, strict
from dubops.deploy.render import describe

KUBERNETES_VERSION = "1.37.0"  # the schemas kubernetes-validate checks core kinds against


@dataclass(frozen=True)
class Problem:
    """One manifest's failure: which object, where in it, and what."""

    manifest: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"{self.manifest}{where}: {self.message}"


class ManifestValidator:
    """Checks documents against the core schemas and the vendored CRD schemas."""

    def __init__(self, crd_dir: Path) -> None:
        from jsonschema import Draft7Validator

        self.crds = {
            key: Draft7Validator(strict(record["openAPIV3Schema"]))
            for key, record in load(crd_dir).items()
        }

    def check(self, doc: dict[str, Any]) -> list[Problem]:
        """Every problem of one document (empty: it is valid)."""
        key = (doc.get("apiVersion", ""), doc.get("kind", ""))
        if key in self.crds:
            return [
                Problem(describe(doc), _json_path(error.absolute_path), error.message)
                for error in sorted(self.crds[key].iter_errors(doc), key=lambda e: e.path)
            ]
        return self._check_core(doc)

    def check_all(self, docs: list[dict[str, Any]]) -> list[Problem]:
        return [problem for doc in docs for problem in self.check(doc)]

    def _check_core(self, doc: dict[str, Any]) -> list[Problem]:
        import kubernetes_validate

        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            return [Problem(describe(doc), _json_path(error.path), error.message)]
        except kubernetes_validate.SchemaNotFoundError:
            return [
                Problem(
                    describe(doc),
                    "",
                    f"no schema for {doc.get('apiVersion')} {doc.get('kind')}: neither a "
                    "core kind nor a CRD vendored in infra/k8s/crds "
                    "(python -m dubops.deploy.crd_schemas)",
                )
            ]
        return []


def _json_path(parts: Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
