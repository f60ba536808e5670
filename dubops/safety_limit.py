"""A stage's ``max_minutes``: a deadline that fails the stage, never shortens it.

Training budgets are numbers of updates (DESIGN.md, "How we measure"): a busy machine
must train the same model, only later. The wall-clock limit is kept as a guard against
a run that is far slower than expected, and it raises instead of returning a model with
fewer updates than configured.
"""

from __future__ import annotations

import time

from dubops.errors import StageTimeLimitError


class SafetyLimit:
    """``check(done, total)`` raises :class:`StageTimeLimitError` once ``minutes`` are spent.

    Args:
        stage: the pipeline step's name (the error names its config key).
        minutes: the limit; None never raises.
        started: ``time.monotonic()`` at the stage's start (default: now).
    """

    def __init__(self, stage: str, minutes: float | None, started: float | None = None) -> None:
        self.stage, self.minutes = stage, minutes
        self.started = time.monotonic() if started is None else started

    def expired(self) -> bool:
        return self.minutes is not None and time.monotonic() - self.started > 60 * self.minutes

    def check(self, done: int, total: int) -> None:
        """Raise when the limit has passed with ``done < total`` units of work finished."""
        if done < total and self.expired():
            assert self.minutes is not None
            raise StageTimeLimitError(self.stage, self.minutes, done, total)
