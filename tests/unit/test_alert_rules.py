"""The alert and recording rules: valid for Prometheus, unit-tested, and fit for on-call.

``promtool`` (Debian/Ubuntu package ``prometheus``; ``.ci/run`` installs it) is
required, not optional: a missing promtool fails these tests rather than skipping
them, so CI can never pass with the rules unchecked.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from dubops.monitoring.prometheus_local import RULES_FILE

TESTS_DIR = RULES_FILE.parent / "tests"
SEVERITIES = {"critical", "warning"}


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool not found: install it with `apt-get install prometheus` "
            "(.ci/run does this in CI)",
            pytrace=False,
        )
    return found


def _alerts() -> list[dict]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _test_files() -> list[Path]:
    return sorted(TESTS_DIR.glob("*.test.yml"))


def test_rules_pass_promtool_check():
    run = subprocess.run(
        [_promtool(), "check", "rules", str(RULES_FILE)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_promtool_unit_tests_pass():
    files = _test_files()
    assert files, f"no *.test.yml in {TESTS_DIR}"
    run = subprocess.run(
        [_promtool(), "test", "rules", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("SUCCESS") == len(files), run.stdout


def test_every_alert_tells_on_call_how_bad_and_what_to_do():
    alerts = _alerts()
    assert alerts
    for rule in alerts:
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        notes = rule.get("annotations", {})
        assert notes.get("summary", "").strip(), f"{name}: no summary"
        assert len(notes.get("description", "")) > 80, f"{name}: no description of what to do"
        assert rule.get("for"), f"{name}: no `for:` (one bad scrape would page)"


def test_every_alert_says_why_its_threshold_in_a_comment():
    lines = RULES_FILE.read_text().splitlines()
    for index, line in enumerate(lines):
        if line.strip().startswith("- alert:"):
            above = lines[index - 1].strip()
            assert above.startswith("#"), f"{line.strip()}: no comment above it saying why"


def test_every_alert_has_a_firing_and_a_quiet_promtool_case():
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in _test_files():
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - fired == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown quiet"


def test_every_stage_has_a_latency_threshold():
    """DubOpsStageLatencyHigh only watches stages with a threshold series."""
    from dubops.inference.result import STAGES

    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    covered = {
        rule["labels"]["stage"]
        for group in groups
        for rule in group["rules"]
        if rule.get("record") == "dubops:stage_seconds:p99_threshold"
    }
    # "total" is the whole dub; "features" the drift record DubbingPipeline.dub_many times.
    assert {*STAGES, "total", "features"} <= covered
