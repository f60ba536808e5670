"""Shared pytest set-up.

``tests`` is a package (``tests/__init__.py``) so fixture builders import as
``from tests.fixtures.corpus import build_fixture_corpus``; the repository root
goes on ``sys.path`` so that import works under plain ``pytest`` as well as
``python -m pytest``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def small_synthetic_corpus(tmp_path_factory) -> Path:
    """A 48-clip corpus from the real generator (a few seconds), shared by the session."""
    from dubops.config import load_config
    from dubops.data.synthetic import generate_corpus

    root = tmp_path_factory.mktemp("small_corpus")
    generate_corpus(load_config("tiny", overrides=["synth.clips=48", "synth.workers=1"]), root)
    return root


@pytest.fixture(scope="session")
def served_champion(small_synthetic_corpus, tmp_path_factory):
    """The micro stages registered and promoted to champion in a private MLflow store,
    their bundle carrying a drift reference for windows of ``SERVED_DRIFT_WINDOW`` dubs.

    Shared by the serving and monitoring tests: building it takes minutes, and none of
    them moves its aliases (servers get their own state folders).
    """
    from tests.fixtures.served_model import SERVED_DRIFT_WINDOW, register_champion

    root = tmp_path_factory.mktemp("served_champion")
    return register_champion(small_synthetic_corpus, root, drift_window=SERVED_DRIFT_WINDOW)
