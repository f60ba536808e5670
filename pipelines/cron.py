"""Kubeflow's cron format, checked before anything is sent to a cluster.

KFP's scheduler uses robfig/cron with a seconds field: six fields,
``second minute hour day-of-month month day-of-week`` (``0 0 3 * * *`` is 03:00 every
day), or a descriptor such as ``@daily``. A five-field Unix cron is the usual mistake:
the message says which field to add.
"""

from __future__ import annotations

import re

from dubops.errors import DubOpsError

FIELDS: tuple[tuple[str, int, int], ...] = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 6),
)
DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_NAMES = {
    "month": {m: i for i, m in enumerate(_MONTHS, 1)},
    "day-of-week": {d: i for i, d in enumerate(_DAYS)},
}
_ITEM = re.compile(r"^(?P<range>\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(?P<step>\d+))?$")
_EVERY = re.compile(r"@every (\d+(ns|us|ms|s|m|h))+")
_EXAMPLE = "e.g. '0 0 3 * * *' (03:00 every day)"


class CronError(DubOpsError, ValueError):
    """A cron expression Kubeflow would refuse, with what is wrong and an example."""


def _value(token: str, name: str, low: int, high: int, cron: str) -> int:
    names = _NAMES.get(name, {})
    if token.upper() in names:
        return names[token.upper()]
    if not token.isdigit():
        raise CronError(f"--cron {cron!r}: {name} field has {token!r}, not a number")
    value = int(token)
    if not low <= value <= high:
        raise CronError(f"--cron {cron!r}: {name} {value} is outside {low}-{high}")
    return value


def _check_field(text: str, name: str, low: int, high: int, cron: str) -> None:
    if text == "?":
        if name not in ("day-of-month", "day-of-week"):
            raise CronError(f"--cron {cron!r}: '?' is only allowed for day-of-month/day-of-week")
        return
    for item in text.split(","):
        match = _ITEM.match(item)
        if match is None:
            raise CronError(f"--cron {cron!r}: cannot read {item!r} in the {name} field")
        if match["step"] is not None and int(match["step"]) == 0:
            raise CronError(f"--cron {cron!r}: step /0 in the {name} field")
        part = match["range"]
        if part == "*":
            continue
        bounds = [_value(t, name, low, high, cron) for t in part.split("-")]
        if len(bounds) == 2 and bounds[0] > bounds[1]:
            raise CronError(f"--cron {cron!r}: range {part} in the {name} field runs backwards")


def validate_cron(cron: str) -> str:
    """The expression, stripped, when Kubeflow will take it; a :class:`CronError` if not."""
    cron = " ".join(cron.split())
    if cron.startswith("@"):
        if cron in DESCRIPTORS or _EVERY.fullmatch(cron):
            return cron
        raise CronError(f"--cron {cron!r}: unknown descriptor; use one of {DESCRIPTORS}")
    parts = cron.split(" ") if cron else []
    names = " ".join(name for name, _, _ in FIELDS)
    if len(parts) != len(FIELDS):
        fix = f"put the seconds first: '0 {cron}'" if len(parts) == 5 else _EXAMPLE
        raise CronError(
            f"--cron {cron!r} has {len(parts)} field(s); Kubeflow recurring runs take 6 "
            f"({names}); {fix}"
        )
    for text, (name, low, high) in zip(parts, FIELDS, strict=True):
        _check_field(text, name, low, high, cron)
    return cron
