"""Prints the bad-input table (case, exit code, seconds to fail) after the run."""

from __future__ import annotations

TIMINGS: list[tuple[str, int, float, str]] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if not TIMINGS:
        return
    write = terminalreporter.write_line
    write("")
    write("bad-input cases: exit code, seconds to fail, message")
    for case, code, seconds, message in sorted(TIMINGS):
        write(f"  {case:<28} {code:>3} {seconds:6.2f} s  {message[:110]}")
