"""The whole training DAG through kfp.local at the micro preset, with a real MLflow store.

One store, three runs, in order, and a fourth from scratch beside them:

1. a step raises (``speech.pretrained_dit`` names a missing file): that step's run and
   the parent run end FAILED; the branches that do not depend on it still finish;
2. the same pipeline without the bad setting resumes: every step finished in run 1
   comes from the cache, the rest runs, the registry ends with a champion;
3. nothing changed: every step is a cache hit, and the champion stays;
4. the same pipeline into a new store and a new MLflow store: every step's weights are
   bit-identical to runs 1+2's and the evaluation's metrics are equal (determinism).

The cache is asserted through the store's per-run step records, never timings.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from dubops.cli.main import app
from dubops.data.layout import CorpusLayout, manifest_hash
from dubops.pipelines.settings import STEPS

pytestmark = pytest.mark.slow

TRAINING_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "33554432",
    "MALLOC_TRIM_THRESHOLD_": "68719476736",
    "MALLOC_TOP_PAD_": "536870912",
    "OMP_NUM_THREADS": "1",
}


@pytest.fixture(scope="module")
def setup(small_synthetic_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    tracking = [
        "--set",
        f"tracking.tracking_uri=sqlite:///{root}/mlruns.db",
        "--set",
        f"tracking.artifact_location={root}/mlartifacts",
    ]
    return small_synthetic_corpus, root, tracking


def _run(setup, monkeypatch, *extra: str, store: str = "store") -> tuple[int, dict]:
    corpus, root, tracking = setup
    for key, value in TRAINING_ENV.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(
        app,
        [
            "pipeline", "run", "--preset", "micro", "--data", str(corpus),
            "--out", str(root / store), "--json", *tracking, *extra,
        ],
    )  # fmt: skip
    assert result.stdout.strip(), result.output
    return result.exit_code, json.loads(result.stdout)


def _client(setup):
    _, root, _ = setup
    return mlflow.MlflowClient(f"sqlite:///{root}/mlruns.db")


def _children(client, parent: str):
    experiment = client.get_experiment_by_name("dubops")
    runs = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    return {r.data.tags["dubops.pipeline_step"]: r for r in runs}


@pytest.fixture(scope="module")
def runs(setup):
    """The three runs, in order (module-scoped: they share the store)."""
    monkeypatch = pytest.MonkeyPatch()
    try:
        _, root, _ = setup
        missing = root / "no-such-checkpoint" / "dit.safetensors"
        failed = _run(setup, monkeypatch, "--set", f"speech.pretrained_dit={missing}")
        resumed = _run(setup, monkeypatch)
        cached = _run(setup, monkeypatch)
    finally:
        monkeypatch.undo()
    return failed, resumed, cached


def test_a_step_that_raises_marks_the_parent_run_failed(runs, setup):
    (code, result), _, _ = runs
    assert code == 1
    assert result["status"] == "FAILED"
    status = {s["step"]: s["status"] for s in result["steps"]}
    assert status["dit_pretrain"] == "failed"
    # kfp.local carries on with the branches that do not need the failed step
    ran = {step for step, s in status.items() if s == "ran"}
    assert ran == {
        "validate_data",
        "reasoner_sft",
        "reasoner_mpo",
        "train_extractors",
        "build_library",
    }
    assert not {"controlnet_tune", "graph_synthesizer", "evaluate"} & set(status)
    client = _client(setup)
    parent = client.get_run(result["run_id"])
    assert parent.info.status == "FAILED"
    error = parent.data.tags["dubops.pipeline_error"]
    assert error.startswith("dit_pretrain: ") and "no-such-checkpoint" in error
    children = _children(client, result["run_id"])
    assert children["dit_pretrain"].info.status == "FAILED"
    assert children["reasoner_mpo"].info.status == "FINISHED"
    failed = next(s for s in result["steps"] if s["step"] == "dit_pretrain")
    assert "no-such-checkpoint" in failed["error"]


def test_the_next_run_resumes_and_ends_with_a_champion(runs, setup):
    (_, failed), (code, result), _ = runs
    assert code == 0, result
    assert result["status"] == "FINISHED"
    status = {s["step"]: s["status"] for s in result["steps"]}
    assert set(status) == set(STEPS)
    finished_before = {s["step"] for s in failed["steps"] if s["status"] == "ran"}
    assert {step for step, s in status.items() if s == "cached"} == finished_before
    assert status["dit_pretrain"] == status["evaluate"] == status["promote"] == "ran"

    corpus, _, _ = setup
    client = _client(setup)
    parent = client.get_run(result["run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["dubops.data_version"] == manifest_hash(CorpusLayout(corpus).manifest)
    assert parent.data.tags["dubops.config_hash"]
    assert parent.data.tags["dubops.preset"] == "micro"
    assert "mlflow.source.git.commit" in parent.data.tags
    assert parent.data.tags["dubops.env.cpu_model"] and "dubops.env.seeds" in parent.data.tags
    assert {"duration_rel_error", "reasoner_format_validity"} <= set(parent.data.metrics)
    children = _children(client, result["run_id"])
    assert set(children) == set(STEPS)
    assert all(r.info.status == "FINISHED" for r in children.values())
    assert children["dit_pretrain"].data.tags["dubops.env.torch_threads"] == "1"
    champion = client.get_model_version_by_alias("dubbing", "champion")
    register = next(s for s in result["steps"] if s["step"] == "register_model")
    assert champion.run_id == children["register_model"].info.run_id
    assert register["status"] == "ran"
    assert result["gate"]["passed"] is True and result["gate"]["challenger"] == 1


def test_an_unchanged_rerun_hits_the_cache_for_every_step(runs, setup):
    _, (_, before), (code, result) = runs
    assert code == 0, result
    status = {s["step"]: s["status"] for s in result["steps"]}
    assert status == dict.fromkeys(STEPS, "cached")
    keys = {s["step"]: s["key"] for s in before["steps"]}
    assert {s["step"]: s["key"] for s in result["steps"]} == keys
    client = _client(setup)
    assert client.get_run(result["run_id"]).info.status == "FINISHED"
    versions = client.search_model_versions("name = 'dubbing'")
    assert len(versions) == 1, "a cached register step registers nothing new"
    assert int(client.get_model_version_by_alias("dubbing", "champion").version) == 1
    children = _children(client, result["run_id"])
    assert all(r.data.tags["dubops.cached"] == "True" for r in children.values())


def test_the_evaluate_step_dubs_through_the_served_dubbing_pipeline(runs, setup):
    """The evaluate step's wav of a clip is what DubbingPipeline.dub gives for it: the
    reasoner's own conclusion and the extractors' own embedding, no ground truth."""
    import numpy as np

    from dubops.audio import read_wav
    from dubops.data.datasets import load_manifest
    from dubops.inference import DubbingPipeline
    from dubops.inference.corpus import row_request

    corpus, root, _ = setup
    _, (_, result), _ = runs
    folders = {s["step"]: root / "store" / s["step"] / s["key"] for s in result["steps"]}
    served = folders["evaluate"] / "dubbed" / "model"
    evaluation = json.loads((folders["evaluate"] / "evaluation.json").read_text())
    assert set(evaluation["oracles"]) == {"oracle-conclusion", "oracle-footage"}
    rows = load_manifest(corpus, ["test_s1", "test_s2"]).head(2).to_dict("records")
    with DubbingPipeline.from_parts(
        folders["graph_synthesizer"] / "graph",
        reasoner_dir=folders["reasoner_mpo"] / "reasoner",
        extractors_dir=folders["train_extractors"] / "extractors",
        library_dir=folders["build_library"] / "library",
    ) as pipeline:
        for row in rows:
            alone = pipeline.dub(row_request(corpus, row))
            wave, _ = read_wav(served / f"{row['clip_id']}.wav")
            recorded = json.loads((served / f"{row['clip_id']}.json").read_text())
            assert set(recorded["conclusion_source"].values()) <= {"reasoner", "fallback"}
            assert recorded["conclusion"] == alone.conclusion
            assert len(wave) == len(alone.wave)
            assert np.abs(wave - alone.wave).max() < 3e-3, row["clip_id"]
    oracle = json.loads(
        (
            folders["evaluate"] / "dubbed" / "oracle-conclusion" / f"{rows[0]['clip_id']}.json"
        ).read_text()
    )
    assert set(oracle["conclusion_source"].values()) == {"override"}


def _weight_hashes(store: Path, steps: list[dict]) -> dict[str, str]:
    """``step/relative path -> sha256`` of every weight file a run's steps left."""
    from dubops.fileio import sha256_file

    hashes = {}
    for step in steps:
        folder = store / step["step"] / step["key"]
        for path in sorted(folder.rglob("*.safetensors")):
            # exported weights, not resume state or the graph's retrieval cache
            if not {"checkpoints", "footage_cache"} & set(path.parts):
                hashes[f"{step['step']}/{path.relative_to(folder)}"] = sha256_file(path)
    return hashes


def test_a_fresh_run_gives_bit_identical_weights_and_equal_metrics(runs, setup, monkeypatch):
    """Budgets are updates and every stage is seeded (one torch thread each), so two runs
    of the same config on the same data give the same model, whatever the machine's load."""
    _, (_, before), _ = runs
    _, root, _ = setup
    fresh_tracking = [
        "--set", f"tracking.tracking_uri=sqlite:///{root}/fresh.db",
        "--set", f"tracking.artifact_location={root}/fresh-artifacts",
    ]  # fmt: skip
    code, again = _run(setup, monkeypatch, *fresh_tracking, store="fresh-store")
    assert code == 0, again
    registry_steps = {"register_model", "promotion_gate", "promote"}  # keyed by the store

    def keys(result: dict) -> dict[str, str]:
        return {s["step"]: s["key"] for s in result["steps"] if s["step"] not in registry_steps}

    assert keys(again) == keys(before)
    first = _weight_hashes(root / "store", before["steps"])
    second = _weight_hashes(root / "fresh-store", again["steps"])
    stages = {name.split("/")[0] for name in first}
    assert {"dit_pretrain", "controlnet_tune", "graph_synthesizer", "reasoner_sft"} <= stages
    assert first == second
    metrics = mlflow.MlflowClient(f"sqlite:///{root}/fresh.db").get_run(again["run_id"]).data
    assert metrics.metrics == _client(setup).get_run(before["run_id"]).data.metrics
