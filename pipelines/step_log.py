"""What a local run shows while it runs: a line per task event, the full logs in a file.

``kfp.local`` prints every line a step writes (its executor input with the whole
config, hundreds of lines of library logging) through ``builtins.print``, and logs its
own task events to ``sys.stdout`` (which ``--json`` keeps for the result).
:func:`step_log` takes both: every line goes to the log file; stderr gets the task
events, the steps' progress lines (``[dubops pipeline] ...`` and the training loops'
update counts), and a failing step's traceback. (Replacing ``builtins.print`` for a
while is kfp.local's own way of indenting these lines:
``kfp.local.logging_utils.indented_print``.)
"""

from __future__ import annotations

import builtins
import contextlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

PROGRESS = "[dubops pipeline]"
# kfp.local's task events worth seeing live (its task output listings are not).
_EVENTS = re.compile(
    r"Running pipeline|Executing task|finished with status|Skipping (conditional )?task"
)
# The training loops' own progress lines (a few per stage: updates done of the budget,
# loss, time left; the reasoner's validation after each epoch; each extractor's score).
_LIBRARY_PROGRESS = re.compile(
    r"\b(dit_pretrain|controlnet_tune|graph_synthesizer) update \d+/\d+"
    r"|\b(sft|mpo) epoch \d+: |vision warm-up: |\w+ extractor: accuracy|duration refinement: "
)


class _Console:
    """A print function and a text stream in one: log everything, echo what matters."""

    def __init__(self, original: Any, log: TextIO, echo: TextIO, verbose: bool) -> None:
        self.original, self.log, self.echo, self.verbose = original, log, echo, verbose
        self.in_traceback = False

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("file") not in (None, sys.stdout, self):
            self.original(*args, **kwargs)
            return
        self.write(kwargs.get("sep", " ").join(str(a) for a in args) + kwargs.get("end", "\n"))

    def write(self, text: str) -> int:
        self.log.write(text)
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith("Traceback"):
                self.in_traceback = True
            elif self.in_traceback and not stripped:
                self.in_traceback = False
            if stripped and (
                self.verbose
                or self.in_traceback
                or PROGRESS in line
                or _EVENTS.search(line)
                or _LIBRARY_PROGRESS.search(line)
            ):
                self.echo.write(stripped + "\n")
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        self.echo.flush()


@contextlib.contextmanager
def step_log(path: Path, verbose: bool = False, echo: TextIO | None = None) -> Iterator[Path]:
    """Send the steps' output and kfp.local's log to ``path``; echo the rest to stderr."""
    path.parent.mkdir(parents=True, exist_ok=True)
    original = builtins.print
    with path.open("a") as log:
        console = _Console(original, log, echo or sys.stderr, verbose)
        builtins.print = console
        try:
            with contextlib.redirect_stdout(console):
                yield path
        finally:
            builtins.print = original
            console.flush()
