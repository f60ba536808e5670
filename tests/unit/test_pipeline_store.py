"""The pipeline's artifact store and cache keys: what makes a step reuse or redo its work."""

from __future__ import annotations

import json

import pytest

from dubops.components.slices import STEP_SLICES, config_slice
from dubops.components.store import (
    MARKER,
    ArtifactStore,
    RunEvent,
    StepRecord,
    StoreBusyError,
    cache_key,
)
from dubops.config import load_config
from dubops.pipelines.settings import STEPS


def _parts(**changes):
    parts = {
        "inputs": {"corpus": "aaa"},
        "config": {"speech.pretrain": {"total_steps": 3}},
        "data_version": "v1",
        "package": "0.1.0",
    }
    return parts | changes


def test_key_is_stable_and_moves_with_every_part():
    key = cache_key("dit_pretrain", _parts())
    assert key == cache_key("dit_pretrain", _parts())
    assert len(key) == 16
    variants = [
        cache_key("controlnet_tune", _parts()),
        cache_key("dit_pretrain", _parts(inputs={"corpus": "bbb"})),
        cache_key("dit_pretrain", _parts(config={"speech.pretrain": {"total_steps": 4}})),
        cache_key("dit_pretrain", _parts(data_version="v2")),
        cache_key("dit_pretrain", _parts(package="0.2.0")),
    ]
    assert key not in variants
    assert len(set(variants)) == len(variants)


def test_record_round_trip_marker_last_and_no_temp_files(tmp_path):
    store = ArtifactStore(tmp_path)
    assert store.lookup("evaluate", "k1") is None
    folder = store.step_dir("evaluate", "k1")
    (folder / "eval").mkdir(parents=True)
    assert store.lookup("evaluate", "k1") is None, "outputs without a marker are unfinished"
    record = StepRecord("evaluate", "k1", exports={"report": "report.html"}, metrics={"wer": 0.4})
    store.complete(record)
    found = store.lookup("evaluate", "k1")
    assert found is not None and found.metrics == {"wer": 0.4} and found.finished_at > 0
    assert sorted(p.name for p in folder.iterdir()) == [MARKER, "eval"]
    store.invalidate("evaluate", "k1")
    assert store.lookup("evaluate", "k1") is None


def test_unreadable_marker_means_run_again(tmp_path):
    store = ArtifactStore(tmp_path)
    store.marker("promote", "k").parent.mkdir(parents=True)
    store.marker("promote", "k").write_text(json.dumps({"step": "promote", "unknown": 1}))
    assert store.lookup("promote", "k") is None
    store.marker("promote", "k").write_text("{not json")
    assert store.lookup("promote", "k") is None


def test_run_events_in_start_order_without_the_final_record(tmp_path):
    store = ArtifactStore(tmp_path)
    store.record_event("run1", RunEvent("evaluate", "k2", "ran", 3.0, started_at=20.0))
    store.record_event("run1", RunEvent("validate_data", "k1", "cached", 1.0, started_at=10.0))
    store.record_final("run1", "SUCCEEDED", None)
    assert [e.step for e in store.run_events("run1")] == ["validate_data", "evaluate"]
    assert store.run_final("run1") == {"state": "SUCCEEDED", "error": None}


@pytest.mark.parametrize("preset", ["tiny", "base", "micro"])
def test_every_step_has_a_slice_that_exists_in_the_config(preset):
    config = load_config(preset)
    assert set(STEPS) <= set(STEP_SLICES)
    for step in STEP_SLICES:
        config_slice(config, step)  # raises KeyError naming a path that is not there


def test_slices_separate_the_steps():
    base = load_config("tiny")
    longer_dit = load_config("tiny", overrides=["speech.pretrain.total_steps=1500"])
    longer_mpo = load_config("tiny", overrides=["reasoning.mpo.epochs=3"])
    changed = {s for s in STEP_SLICES if config_slice(base, s) != config_slice(longer_dit, s)}
    assert changed == {"dit_pretrain"}  # the later speech steps change through its key
    changed = {s for s in STEP_SLICES if config_slice(base, s) != config_slice(longer_mpo, s)}
    assert changed == {"reasoner_mpo"}


def test_one_run_at_a_time_per_store(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    other = ArtifactStore(tmp_path / "store")
    busy = pytest.raises(StoreBusyError, match=r"another pipeline run \(pid \d+\)")
    with store.exclusive(), busy, other.exclusive():
        pass
    with store.exclusive():  # released when the first run ended
        pass
