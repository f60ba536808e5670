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
