"""Where the deployment's files are: one place that knows the ``infra/`` layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dubops.errors import DubOpsError


class DeployError(DubOpsError, ValueError):
    """A deployment file is missing or wrong; the message names it and the fix."""


@dataclass(frozen=True)
class InfraLayout:
    """``infra/`` of a checkout: the images, the Kustomize tree and the vendored CRDs."""

    root: Path  # the checkout (holds infra/ and monitoring/)

    @classmethod
    def find(cls, root: Path | None = None) -> InfraLayout:
        """The checkout at ``root``, else the one this package was installed from, else cwd.

        Raises:
            DeployError: no ``infra/k8s`` there.
        """
        candidates = [root] if root else [Path(__file__).resolve().parents[2], Path.cwd()]
        for candidate in candidates:
            if (candidate / "infra" / "k8s" / "base").is_dir():
                return cls(candidate.resolve())
        raise DeployError(
            f"no infra/k8s/base under {', '.join(str(c) for c in candidates)}; "
            "run from a DubOps checkout or pass --root"
        )

    @property
    def k8s(self) -> Path:
        return self.root / "infra" / "k8s"

    @property
    def base(self) -> Path:
        return self.k8s / "base"

    @property
    def crds(self) -> Path:
        """Vendored CRD schemas, one JSON file per kind."""
        return self.k8s / "crds"

    @property
    def dockerfile(self) -> Path:
        return self.root / "infra" / "docker" / "Dockerfile"

    @property
    def images_file(self) -> Path:
        return self.root / "infra" / "docker" / "images.yaml"

    @property
    def rules_file(self) -> Path:
        return self.root / "monitoring" / "rules" / "dubops.rules.yml"

    @property
    def dashboard_file(self) -> Path:
        return self.root / "monitoring" / "dashboards" / "dubops.json"

    @property
    def generated_monitoring(self) -> Path:
        return self.base / "monitoring"

    def overlays(self) -> list[str]:
        """The overlay names (folders of ``infra/k8s/overlays`` with a kustomization)."""
        folder = self.k8s / "overlays"
        return sorted(p.parent.name for p in folder.glob("*/kustomization.yaml"))

    def overlay(self, name: str) -> Path:
        """The overlay's folder.

        Raises:
            DeployError: an unknown overlay (the message lists the known ones).
        """
        known = self.overlays()
        if name not in known:
            raise DeployError(f"--overlay {name!r}: unknown; choose one of {', '.join(known)}")
        return self.k8s / "overlays" / name
