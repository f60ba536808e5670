"""Silence what native libraries write straight to file descriptor 2.

MediaPipe's graph (C++ glog/absl, TF Lite) prints start-up chatter (``Created
TensorFlow Lite XNNPACK delegate``, ``W0000 … inference_feedback_manager``) and,
beside protobuf 6, ``AttributeError: 'MessageFactory' object has no attribute
'GetPrototype'`` when its solutions are imported (harmless).
None of it passes through Python's logging, and ``GLOG_minloglevel`` /
``TF_CPP_MIN_LOG_LEVEL`` do not reach it (measured), so the descriptor itself
is pointed at /dev/null for the few calls that print.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """Send fd 2 to /dev/null inside the block (Python's own stderr included)."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (e.g. a daemon): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def mediapipe_solution_base(solution: str) -> Any:
    """mediapipe's ``SolutionBase`` once ``mediapipe.python.solutions.<solution>`` is imported.

    That import registers the calculator option types the solution's graph config names;
    beside protobuf 6 it also prints an AttributeError to fd 2 (harmless), silenced here.

    Raises:
        ImportError: mediapipe 0.10.21 is not installed (callers name their own fix).
    """
    import importlib

    with silenced_stderr():
        importlib.import_module(f"mediapipe.python.solutions.{solution}")
        from mediapipe.python.solution_base import SolutionBase
    return SolutionBase
