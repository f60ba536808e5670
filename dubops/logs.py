"""The one logging set-up: Rich on a terminal, plain lines otherwise, always on stderr.

Stdout stays free for ``--json`` output. Called by entry points only (nothing
configures logging at import).
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries whose INFO output is noise for our users.
QUIET_LOGGERS = (
    "great_expectations",
    "mlflow",
    "alembic",
    "numba",
    "matplotlib",
    "urllib3",
    "h5py",
)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (test runners swap it per call)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(level: str | int = "INFO") -> None:
    """Configure the root logger once for a command-line or server process."""
    root = logging.getLogger()
    if getattr(root, "_dubops_configured", False):
        root.setLevel(level)
        return
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    root._dubops_configured = True  # type: ignore[attr-defined]
