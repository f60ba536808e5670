"""The one timestamp format of registry tags and lock messages.

Local time with its UTC offset: an operator reads these beside their own clock (who
holds the lock since when, when a gate ran), and the offset keeps them unambiguous
across hosts in different zones.
"""

from __future__ import annotations

import time


def local_iso(seconds: float | None = None) -> str:
    """``2026-12-07T04:32:13+0000`` for ``seconds`` since the epoch (default: now)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))
