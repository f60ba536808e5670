"""dubops.tracking against a real MLflow SQLite store in a temp folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dubops.config import DubOpsConfig, config_hash, flatten_config
from dubops.data.layout import CorpusLayout, manifest_hash
from dubops.tracking import (
    TAG_CONFIG_HASH,
    TAG_DATA_VERSION,
    TAG_GIT_COMMIT,
    TAG_PRESET,
    git_commit,
    resolve_tracking_uri,
    start_run,
)


@pytest.fixture()
def config() -> DubOpsConfig:
    return DubOpsConfig()


@pytest.fixture()
def data_version(tmp_path: Path) -> str:
    layout = CorpusLayout(tmp_path / "corpus")
    layout.root.mkdir()
    pd.DataFrame({"clip_id": ["a", "b"], "split": ["train", "val"]}).to_parquet(layout.manifest)
    return manifest_hash(layout.manifest)


def _client(tmp_path: Path, config: DubOpsConfig):
    from mlflow.tracking import MlflowClient

    return MlflowClient(resolve_tracking_uri(config.tracking, tmp_path))


def test_params_tags_metrics_artifacts(tmp_path: Path, config: DubOpsConfig, data_version: str):
    note = tmp_path / "note.txt"
    note.write_text("hello")
    with start_run(config, "stage", data_version=data_version, base_dir=tmp_path) as tracker:
        for step in range(3):
            tracker.log_metrics({"loss": 1.0 / (step + 1), "lr": 1e-3}, step=step)
        tracker.log_artifact(note, "notes")
        tracker.log_dict({"a": 1}, "extra/info.json")
        tracker.log_text("text", "extra/readme.txt")
        run_id = tracker.run_id

    assert (tmp_path / "mlruns.db").is_file()
    client = _client(tmp_path, config)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "stage"
    assert run.data.params == flatten_config(config)
    assert run.data.tags[TAG_DATA_VERSION] == data_version
    assert run.data.tags[TAG_CONFIG_HASH] == config_hash(config)
    assert run.data.tags[TAG_PRESET] == "tiny"
    assert run.data.tags.get(TAG_GIT_COMMIT) == git_commit()  # None outside a git checkout
    assert "mlflow.systemMetrics" not in str(run.data.tags)

    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, round(m.value, 4)) for m in history] == [(0, 1.0), (1, 0.5), (2, 0.3333)]

    art_root = tmp_path / "mlartifacts"
    assert run.info.artifact_uri.startswith(art_root.resolve().as_uri())
    files = {p.relative_to(art_root).as_posix() for p in art_root.rglob("*") if p.is_file()}
    assert {
        f"{run_id}/artifacts/notes/note.txt",
        f"{run_id}/artifacts/extra/info.json",
        f"{run_id}/artifacts/extra/readme.txt",
    } <= files


def test_failing_block_marks_run_failed(tmp_path: Path, config: DubOpsConfig):
    holder = {}
    with (
        pytest.raises(RuntimeError, match="boom"),
        start_run(config, "broken", base_dir=tmp_path) as tracker,
    ):
        holder["run_id"] = tracker.run_id
        raise RuntimeError("boom")
    run = _client(tmp_path, config).get_run(holder["run_id"])
    assert run.info.status == "FAILED"
    assert TAG_DATA_VERSION not in run.data.tags

    import mlflow

    assert mlflow.active_run() is None


def test_nested_runs_link_to_parent(tmp_path: Path, config: DubOpsConfig):
    with start_run(config, "pipeline", base_dir=tmp_path, tags={"kind": "dag"}) as parent:
        with start_run(config, "child", nested=True, base_dir=tmp_path) as child:
            child.log_metrics({"x": 1.0}, step=0)
        assert child.run_id != parent.run_id
    client = _client(tmp_path, config)
    child_run = client.get_run(child.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == parent.run_id
    assert client.get_run(parent.run_id).data.tags["kind"] == "dag"
    assert child_run.info.status == "FINISHED"
