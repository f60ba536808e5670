"""The library's Feast repository: copy the template, apply it, materialise into Milvus Lite.

The template (``feature_store/repo``: ``feature_store.yaml`` and one definitions
module) is copied into each library with its placeholders filled; apply and
materialisation go through the Feast Python SDK. The definitions module is loaded
from the copy by path, not imported as a package module, because `feast apply`
semantics (every .py in the repo is executed) are what the folder is kept for.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dubops.feature_store.layout import LibraryLayout, quiet_milvus_lite

logger = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent / "repo"
# Feast needs an event time; the footage is static, so one fixed instant.
EVENT_TIME = "2020-01-01T00:00:00+00:00"

StageProgress = Callable[[str, int, int], None]


def copy_repo_template(layout: LibraryLayout, dim: int) -> None:
    """The Feast repo: the yaml with its paths filled, and the one definitions module."""
    text = (TEMPLATE_DIR / "feature_store.yaml").read_text()
    filled = (
        text.replace("{{registry_path}}", LibraryLayout.REGISTRY_REL)
        .replace("{{online_path}}", LibraryLayout.ONLINE_REL)
        .replace("{{embedding_dim}}", str(dim))
    )
    assert "{{" not in filled, "unfilled placeholder in feature_store.yaml"
    (layout.repo / "feature_store.yaml").write_text(filled)
    definitions = [p for p in TEMPLATE_DIR.glob("*.py")]
    assert len(definitions) == 1, (
        f"the Feast repo template must hold one module, found {definitions}"
    )
    shutil.copy(definitions[0], layout.repo / definitions[0].name)


def _feast_objects(repo: Path) -> list[Any]:
    """The Feast objects of the repo's definitions module (what `feast apply` would find)."""
    from feast import Entity, FeatureView
    from feast.data_source import DataSource

    (module_path,) = repo.glob("*.py")
    spec = importlib.util.spec_from_file_location(
        f"_dubops_footage_repo_{os.getpid()}", module_path
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [
        obj for obj in vars(module).values() if isinstance(obj, Entity | FeatureView | DataSource)
    ]


def apply_and_materialise(
    layout: LibraryLayout, progress: StageProgress | None
) -> dict[str, float]:
    from datetime import UTC, datetime, timedelta

    from feast import FeatureStore
    from milvus_lite.server_manager import server_manager_instance

    quiet_milvus_lite()
    stages = {}
    t = time.perf_counter()
    if progress:
        progress("apply", 0, 1)
    store = FeatureStore(repo_path=str(layout.repo))
    try:
        store.apply(_feast_objects(layout.repo))
        if progress:
            progress("apply", 1, 1)
        stages["apply"] = time.perf_counter() - t
        t = time.perf_counter()
        if progress:
            progress("materialise", 0, 1)
        start = datetime.fromisoformat(EVENT_TIME) - timedelta(days=1)
        store.materialize(start_date=start, end_date=datetime.now(UTC))
        if progress:
            progress("materialise", 1, 1)
        stages["materialise"] = time.perf_counter() - t
    finally:
        # Milvus Lite keeps one in-process server per data folder: stop it before the
        # folder is renamed, or this process would hold a server on a vanished path.
        server_manager_instance.release_server(str(layout.online_store))
    return stages
