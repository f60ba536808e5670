"""Kubeflow's six-field cron is checked before anything reaches a cluster."""

from __future__ import annotations

import pytest

from dubops.pipelines.cron import CronError, validate_cron


@pytest.mark.parametrize(
    "cron",
    [
        "0 0 3 * * *",
        "0 */15 * * * *",
        "30 0 3 ? * MON-FRI",
        "0 0 3 1,15 JAN-JUN *",
        "0 0 0/6 * * 0",
        "@daily",
        "@every 1h30m",
    ],
)
def test_kubeflow_accepts(cron):
    assert validate_cron(f"  {cron} ") == cron


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 3 * * *", "has 5 field.*put the seconds first: '0 0 3 \\* \\* \\*'"),
        ("0 0 3 * * * 2030", "has 7 field.*second minute hour day-of-month month day-of-week"),
        ("", "has 0 field"),
        ("0 0 24 * * *", "hour 24 is outside 0-23"),
        ("60 0 3 * * *", "second 60 is outside 0-59"),
        ("0 0 3 0 * *", "day-of-month 0 is outside 1-31"),
        ("0 0 3 * 13 *", "month 13 is outside 1-12"),
        ("0 0 3 * * 7", "day-of-week 7 is outside 0-6"),
        ("0 0 3 * * FUN", "day-of-week field has 'FUN'"),
        ("0 0 5-3 * * *", "range 5-3 in the hour field runs backwards"),
        ("0 */0 * * * *", "step /0 in the minute field"),
        ("? 0 3 * * *", "'\\?' is only allowed"),
        ("0 0 3 * * x*", "cannot read 'x\\*'"),
        ("@sometimes", "unknown descriptor"),
    ],
)
def test_refused_with_the_reason(cron, message):
    with pytest.raises(CronError, match=message):
        validate_cron(cron)
    assert issubclass(CronError, ValueError)  # the CLI reports it as a user error
