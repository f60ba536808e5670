"""Every offline check of the deployment in one report (``dubops deploy check``).

For each overlay: it renders, every manifest passes its schema (core or vendored CRD),
every pod passes our policy, and checkov passes (the rendered manifests, the Dockerfile).
Across them: the generated monitoring manifests are current, and the images agree with
``infra/docker/images.yaml`` (the servers run the serving image, the PyTorchJob the CUDA
training image, ``pipeline.image`` of each preset the CPU training image).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dubops.deploy import monitoring_manifests, policy
from dubops.deploy.checkov_run import run_checkov
from dubops.deploy.images import image_names
from dubops.deploy.layout import InfraLayout
from dubops.deploy.pod_specs import images
from dubops.deploy.render import describe, render_text
from dubops.deploy.validate import ManifestValidator

SERVING_KINDS = {"InferenceService"}
SERVING_NAMES = {"dubops-bento"}


@dataclass
class CheckResult:
    """One named check: what it covered and what it found."""

    name: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def check_deployment(
    layout: InfraLayout,
    overlays: list[str] | None = None,
    checkov: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[CheckResult]:
    """Run every check on the overlays (default: all); one result per check and overlay."""
    import yaml

    say = progress or (lambda _: None)
    validator = ManifestValidator(layout.crds)
    names = image_names(layout)
    results = []
    with tempfile.TemporaryDirectory(prefix="dubops-deploy-") as tmp:
        rendered_dir = Path(tmp)
        for overlay in overlays or layout.overlays():
            say(f"{overlay}: render")
            text = render_text(layout, overlay)
            (rendered_dir / f"{overlay}.yaml").write_text(text)
            docs = [d for d in yaml.safe_load_all(text) if d]
            say(f"{overlay}: schemas and policy")
            results.append(_result(f"{overlay}: schemas", docs, validator.check_all(docs)))
            results.append(_result(f"{overlay}: pod policy", docs, policy.check_all(docs)))
            results.append(_images_result(overlay, docs, names))
        if checkov:
            say("checkov: manifests")
            results.append(_checkov_result("checkov: manifests", rendered_dir, "kubernetes"))
            say("checkov: Dockerfile")
            results.append(_checkov_result("checkov: Dockerfile", layout.dockerfile, "dockerfile"))
    stale = monitoring_manifests.stale(layout)
    results.append(
        CheckResult(
            "monitoring manifests current",
            checked=2,
            problems=[f"{n} is stale: run `dubops deploy monitoring`" for n in stale],
        )
    )
    results.append(_pipeline_image_result(names))
    return results


def _result(name: str, docs: list[dict[str, Any]], problems: list[Any]) -> CheckResult:
    return CheckResult(name, checked=len(docs), problems=[str(p) for p in problems])


def _images_result(overlay: str, docs: list[dict[str, Any]], names: dict[str, str]) -> CheckResult:
    """The servers run a serving image, the PyTorchJob the CUDA training image, and every
    other image of ours is one that ``images.yaml`` names."""
    serving = names["serving" if overlay == "local" else "serving-cuda"]
    repositories = {name.rsplit(":", 1)[0] for name in names.values()}
    result = CheckResult(f"{overlay}: images agree with images.yaml")
    for doc in docs:
        expected = _expected_image(doc, serving, names)
        for image in images(doc):
            result.checked += 1
            if expected and image != expected:
                result.problems.append(f"{describe(doc)} runs {image}, expected {expected}")
            ours = image.rsplit(":", 1)[0] in repositories
            if not expected and ours and image not in names.values():
                result.problems.append(f"{describe(doc)} runs {image}, not in images.yaml")
    return result


def _expected_image(doc: dict[str, Any], serving: str, names: dict[str, str]) -> str | None:
    """The one image a manifest must run, where the deployment fixes it."""
    if doc["kind"] in SERVING_KINDS or (
        doc["kind"] == "Deployment" and doc["metadata"]["name"] in SERVING_NAMES
    ):
        return serving
    if doc["kind"] == "PyTorchJob":
        return names["training-cuda"]
    return None


def _checkov_result(name: str, target: Path, framework: str) -> CheckResult:
    report = run_checkov(target, framework)
    problems = [f"{check} {resource}: {detail}" for check, resource, detail in report.failed]
    problems += [
        f"{check} {resource}: skipped without a reason"
        for check, resource, reason in report.skipped
        if not reason.strip()
    ]
    return CheckResult(name, checked=report.passed + len(report.failed), problems=problems)


def _pipeline_image_result(names: dict[str, str]) -> CheckResult:
    """``pipeline.image`` of each preset is the CPU training image."""
    from dubops.config import load_config

    result = CheckResult("pipeline.image is the training image")
    for preset in ("tiny", "base"):
        result.checked += 1
        image = load_config(preset).pipeline.image
        if image != names["training-cpu"]:
            result.problems.append(
                f"preset {preset}: pipeline.image {image}, expected {names['training-cpu']}"
            )
    return result
