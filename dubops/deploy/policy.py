"""Our policy on every pod the manifests run, custom resources included.

checkov covers the core kinds; it does not look inside an InferenceService or a
PyTorchJob. These rules (the issue's list) apply to every pod spec
:func:`~dubops.deploy.pod_specs.pod_specs` finds: an image with a pinned tag (never
``latest``), CPU and memory limits, a non-root user, a read-only root filesystem, no
privilege escalation, all capabilities dropped, and probes on long-running pods.
"""

from __future__ import annotations

from typing import Any

from dubops.deploy.pod_specs import LONG_RUNNING, pod_specs
from dubops.deploy.render import describe
from dubops.deploy.validate import Problem


def pinned(image: str) -> bool:
    """A digest, or a tag other than ``latest`` (a missing tag means ``latest``)."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in {"", "latest"}


def check_policy(doc: dict[str, Any]) -> list[Problem]:
    """Every policy breach of one manifest (empty: none)."""
    long_running = doc.get("kind") in LONG_RUNNING
    return [
        Problem(describe(doc), f"{where}.containers[{index}]", message)
        for where, pod in pod_specs(doc)
        for index, container in enumerate(pod.get("containers", []))
        for message in _container_breaches(
            container, pod.get("securityContext") or {}, long_running
        )
    ]


def _container_breaches(
    container: dict[str, Any], pod_context: dict[str, Any], long_running: bool
) -> list[str]:
    """What one container breaks, as messages that say the fix."""
    breaches = []
    image = container.get("image", "")
    if not pinned(image):
        breaches.append(f"image {image!r} is not pinned to a version tag or digest")
    limits = (container.get("resources") or {}).get("limits") or {}
    breaches += [
        f"no {r} limit (resources.limits.{r})" for r in ("cpu", "memory") if r not in limits
    ]
    context = container.get("securityContext") or {}
    if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
        breaches.append("may run as root: set securityContext.runAsNonRoot: true")
    if context.get("readOnlyRootFilesystem") is not True:
        breaches.append("root filesystem writable: set readOnlyRootFilesystem: true")
    if context.get("allowPrivilegeEscalation") is not False:
        breaches.append("set securityContext.allowPrivilegeEscalation: false")
    if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
        breaches.append("capabilities not dropped: set capabilities.drop: [ALL]")
    if long_running:
        breaches += [f"no {p}" for p in ("readinessProbe", "livenessProbe") if p not in container]
    return breaches


def check_all(docs: list[dict[str, Any]]) -> list[Problem]:
    return [problem for doc in docs for problem in check_policy(doc)]
