"""The image names every part of the deployment must agree on (``infra/docker/images.yaml``)."""

from __future__ import annotations

from typing import Any

from dubops.deploy.layout import DeployError, InfraLayout


def image_names(layout: InfraLayout) -> dict[str, str]:
    """Dockerfile target -> the image it is pushed as."""
    import yaml

    names = yaml.safe_load(layout.images_file.read_text())
    if not isinstance(names, dict) or not names:
        raise DeployError(f"{layout.images_file}: expected target: image lines")
    return {str(k): str(v) for k, v in names.items()}


def compiled_images(documents: list[dict[str, Any]]) -> set[str]:
    """The images a compiled Kubeflow pipeline (its IR YAML's documents) runs its steps in."""
    return {
        executor["container"]["image"]
        for doc in documents
        for executor in doc.get("deploymentSpec", {}).get("executors", {}).values()
        if "container" in executor
    }
