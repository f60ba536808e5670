"""checkov over the rendered manifests and the Dockerfile, from its own environment.

checkov pins packages the project's environment must not be moved to, so ``make
install`` puts it in ``.venv/tools/checkov`` (``requirements/tools-checkov.txt``). A check
we skip is skipped in place, on the resource (``checkov.io/skipN`` annotations) or in the
Dockerfile (``# checkov:skip=``), with the reason beside it; :class:`CheckovReport` lists
the skips so a test can insist every one has a reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dubops.deploy.layout import DeployError


@dataclass
class CheckovReport:
    """What checkov found: failed and skipped checks as ``(check id, resource, detail)``."""

    passed: int = 0
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)


def checkov_binary() -> Path:
    """``.venv/tools/checkov/bin/checkov`` of this environment.

    Raises:
        DeployError: not installed (``make install`` installs it).
    """
    venv = Path(sys.prefix)
    binary = venv / "tools" / "checkov" / "bin" / "checkov"
    if not binary.is_file():
        raise DeployError(f"checkov is not installed at {binary}: run `make install`")
    return binary


def run_checkov(target: Path, framework: str) -> CheckovReport:
    """checkov on a file or folder (``framework``: kubernetes or dockerfile)."""
    option = "-d" if target.is_dir() else "-f"
    command = [
        str(checkov_binary()),
        option,
        str(target),
        "--framework",
        framework,
        "--compact",
        "--quiet",
        # Offline: no guideline download from the vendor's platform.
        "--skip-download",
        "-o",
        "json",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode not in (0, 1):
        raise DeployError(f"checkov failed on {target}: {result.stderr.strip()[-2000:]}")
    if not result.stdout.strip():
        raise DeployError(f"checkov found nothing to check in {target}")
    data = json.loads(result.stdout)
    report = CheckovReport()
    for section in data if isinstance(data, list) else [data]:
        results = section.get("results", {})
        # --quiet leaves the passed checks out of the results; the summary counts them.
        report.passed += int(section.get("summary", {}).get("passed", 0))
        for item in results.get("failed_checks", []):
            report.failed.append((item["check_id"], item["resource"], item["check_name"]))
        for item in results.get("skipped_checks", []):
            reason = (item.get("check_result") or {}).get("suppress_comment", "")
            report.skipped.append((item["check_id"], item["resource"], reason))
    return report
