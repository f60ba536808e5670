"""Registry pieces that need no MLflow store: tags, URIs, the promotion lock's file."""

from __future__ import annotations

import fcntl
import os
from types import SimpleNamespace

import pytest

from dubops.config import load_config
from dubops.registry.loading import parse_models_uri
from dubops.registry.lock import lock_path, promotion_lock
from dubops.registry.store import RegistryError, metric_tags, version_baselines, version_metrics


def test_metric_tags_round_trip_every_float_digit():
    metrics = {"mcd_dtw": 50.123456789012345, "wer": 0.1, "broken": float("nan")}
    baselines = {"mean-mel": {"mcd_dtw": 84.3}, "majority": {"reasoner_scene_type_accuracy": 1 / 3}}
    tags = metric_tags(metrics, baselines)
    version = SimpleNamespace(tags=tags)
    assert version_metrics(version) == {"mcd_dtw": 50.123456789012345, "wer": 0.1}  # NaN dropped
    assert version_baselines(version) == baselines
    with pytest.raises(ValueError, match="dot"):
        metric_tags({}, {"mean.mel": {"wer": 1.0}})


def test_models_uris():
    assert parse_models_uri("models:/dubbing@champion") == ("dubbing", "champion")
    assert parse_models_uri("models:/dubbing/3") == ("dubbing", "3")
    with pytest.raises(RegistryError, match="models:/NAME@ALIAS"):
        parse_models_uri("models:/dubbing")


def test_lock_file_sits_beside_a_sqlite_store(tmp_path):
    config = load_config("tiny", overrides=[f"tracking.tracking_uri=sqlite:///{tmp_path}/ml.db"])
    assert lock_path(config) == tmp_path / "ml.db.dubbing.promotion.lock"
    remote = load_config("tiny", overrides=["tracking.tracking_uri=http://mlflow:5000"])
    assert lock_path(remote).name.startswith("dubops-registry-")
    shared = load_config(
        "tiny",
        overrides=["tracking.tracking_uri=http://mlflow:5000", f"registry.lock_dir={tmp_path}"],
    )
    assert lock_path(shared).parent == tmp_path


def test_a_held_lock_makes_the_next_promotion_wait_then_give_up(tmp_path):
    config = load_config(
        "tiny",
        overrides=[
            f"tracking.tracking_uri=sqlite:///{tmp_path}/ml.db",
            "registry.lock_timeout_s=0.3",
        ],
    )
    path = lock_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    # flock locks belong to an open file: a second open of the same file contends like
    # another process would.
    holder = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        with pytest.raises(RegistryError, match="lock_timeout_s"), promotion_lock(config):
            pass
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    with promotion_lock(config) as held:  # free again
        assert held == path and path.read_text().strip() == str(os.getpid())
