"""Find the pod specs inside manifests, core kinds and custom resources alike."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Kinds whose pods serve: they must carry readiness and liveness probes.
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet", "InferenceService"}


def pod_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, pod spec)`` for every pod template of the manifest."""
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}:
        yield "spec.template.spec", spec["template"]["spec"]
    elif kind == "CronJob":
        yield "spec.jobTemplate.spec.template.spec", spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "Pod":
        yield "spec", spec
    elif kind == "InferenceService":
        # KServe's predictor is a pod spec inline (custom container form).
        yield "spec.predictor", spec["predictor"]
    elif kind == "PyTorchJob":
        for role, replica in spec.get("pytorchReplicaSpecs", {}).items():
            yield f"spec.pytorchReplicaSpecs.{role}.template.spec", replica["template"]["spec"]


def images(doc: dict[str, Any]) -> list[str]:
    """Every container image the manifest runs (init containers included)."""
    return [
        container["image"]
        for _, pod in pod_specs(doc)
        for container in pod.get("initContainers", []) + pod.get("containers", [])
    ]
