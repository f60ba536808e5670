"""One step's runtime with a real MLflow store: cache hits skip the work, failures are
recorded and end the step's run FAILED, unfinished attempts resume, stale records rerun."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import mlflow
import pytest
from kfp.dsl import Dataset, Metrics, Model

from dubops.components.finalize import run_finalize
from dubops.components.parent_run import (
    close_parent_run,
    open_parent_run,
    resolve_parent_run,
    run_status,
)
from dubops.components.runtime import StepResult, run_step
from dubops.components.store import ArtifactStore, RunEvent
from dubops.config import load_config


@pytest.fixture(scope="module")
def mlflow_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("mlflow")  # one store for the module: it takes seconds


@pytest.fixture()
def world(tmp_path, mlflow_dir):
    """(config, corpus folder, store, parent run id); a temp MLflow store."""
    config = load_config(
        "micro",
        overrides=[
            f"tracking.tracking_uri=sqlite:///{mlflow_dir}/mlruns.db",
            f"tracking.artifact_location={mlflow_dir}/mlartifacts",
        ],
    )
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "manifest.parquet").write_bytes(b"a stand-in manifest: only its hash is read")
    parent = open_parent_run(config, "v1")
    return config, corpus, tmp_path / "store", parent


def _corpus_artifact(tmp_path, corpus, store, config, parent):
    out = Dataset(name="corpus", uri=str(tmp_path / "kfp" / "corpus"), metadata={})

    def body(ctx):
        (ctx.out_dir / "corpus").mkdir()
        (ctx.out_dir / "corpus" / "validation.json").write_text("{}")
        return StepResult(exports={"corpus": "corpus"}, metrics={"clips": 3})

    run_step(
        "validate_data",
        config_json=config.model_dump_json(),
        store_dir=str(store),
        parent_run_id=parent,
        data_dir=str(corpus),
        body=body,
        outputs={"corpus": out},
    )
    return out


def _step(config, store, parent, corpus_art, out, body, **kw):
    return run_step(
        "dit_pretrain",
        config_json=config.model_dump_json(),
        store_dir=str(store),
        parent_run_id=parent,
        body=body,
        inputs={"corpus": corpus_art},
        outputs={"dit": out},
        **kw,
    )


def _runs(config, step, parent):
    client = mlflow.MlflowClient(config.tracking.tracking_uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    query = f"tags.`dubops.pipeline_step` = '{step}' and tags.`mlflow.parentRunId` = '{parent}'"
    runs = client.search_runs([experiment.experiment_id], query)
    return sorted(runs, key=lambda r: r.info.start_time)


def test_second_call_is_a_cache_hit_that_skips_the_work(world, tmp_path):
    config, corpus, store, parent = world
    corpus_art = _corpus_artifact(tmp_path, corpus, store, config, parent)
    calls = []

    def body(ctx):
        calls.append(ctx.resume)
        (ctx.out_dir / "dit").mkdir()
        (ctx.out_dir / "dit" / "dit.safetensors").write_bytes(b"weights")
        (ctx.out_dir / "dit" / "checkpoints").mkdir()
        return StepResult(exports={"dit": "dit"}, metrics={"val_loss": 1.5})

    first = Model(name="dit", uri=str(tmp_path / "kfp1" / "dit"), metadata={})
    one = _step(config, store, parent, corpus_art, first, body)
    second = Model(name="dit", uri=str(tmp_path / "kfp2" / "dit"), metadata={})
    two = _step(config, store, parent, corpus_art, second, body)
    assert calls == [False], "the body ran once"
    assert (one.cached, two.cached) == (False, True)
    assert one.record.key == two.record.key
    for art in (first, second):
        assert art.metadata["cache_key"] == one.record.key
        assert art.metadata["store_path"] == str(one.out_dir / "dit")
        # top-level files travel with the KFP artifact, checkpoint folders stay in the store
        assert sorted(p.name for p in (tmp_path / art.uri).iterdir()) == ["dit.safetensors"]
    # one event per step and pipeline run: the latest
    events = ArtifactStore(store).run_events(parent)
    assert [(e.step, e.status) for e in events] == [
        ("validate_data", "ran"),
        ("dit_pretrain", "cached"),
    ]
    runs = _runs(config, "dit_pretrain", parent)
    assert [r.data.tags["dubops.cached"] for r in runs] == ["False", "True"]
    assert all(r.data.tags["mlflow.parentRunId"] == parent for r in runs)
    assert all(r.data.metrics["val_loss"] == 1.5 for r in runs)
    # a different config slice is another key: the work runs again
    longer = load_config(
        "micro",
        overrides=[
            f"tracking.tracking_uri={config.tracking.tracking_uri}",
            f"tracking.artifact_location={config.tracking.artifact_location}",
            "speech.pretrain.total_steps=4",
        ],
    )
    third = Model(name="dit", uri=str(tmp_path / "kfp3" / "dit"), metadata={})
    assert not _step(longer, store, parent, corpus_art, third, body).cached
    assert len(calls) == 2


def test_a_failing_step_is_recorded_and_resumes_from_its_folder(world, tmp_path):
    config, corpus, store, parent = world
    corpus_art = _corpus_artifact(tmp_path, corpus, store, config, parent)

    def broken(ctx):
        (ctx.out_dir / "dit").mkdir()
        raise FileNotFoundError("speech.pretrained_dit: /nowhere/dit.safetensors is missing")

    out = Model(name="dit", uri=str(tmp_path / "kfp1" / "dit"), metadata={})
    with pytest.raises(FileNotFoundError):
        _step(config, store, parent, corpus_art, out, broken)
    events = ArtifactStore(store).run_events(parent)
    assert events[-1].status == "failed" and "pretrained_dit" in events[-1].error
    assert _runs(config, "dit_pretrain", parent)[-1].info.status == "FAILED"

    seen = []

    def fixed(ctx):
        seen.append(ctx.resume)
        (ctx.out_dir / "dit" / "dit.safetensors").write_bytes(b"w")
        return StepResult(exports={"dit": "dit"})

    again = Model(name="dit", uri=str(tmp_path / "kfp2" / "dit"), metadata={})
    assert not _step(config, store, parent, corpus_art, again, fixed).cached
    assert seen == [True], "the unfinished attempt's folder is handed to the trainer to resume"


def test_a_record_the_world_no_longer_backs_runs_again(world, tmp_path):
    config, corpus, store, parent = world
    corpus_art = _corpus_artifact(tmp_path, corpus, store, config, parent)
    calls = []

    def body(ctx):
        calls.append(1)
        (ctx.out_dir / "dit").mkdir(exist_ok=True)
        return StepResult(exports={"dit": "dit"}, values={"version": len(calls)})

    def art(i):
        return Model(name="dit", uri=str(tmp_path / f"kfp{i}" / "dit"), metadata={})

    _step(config, store, parent, corpus_art, art(1), body)
    kept = _step(config, store, parent, corpus_art, art(2), body, still_valid=lambda r, c: True)
    assert kept.cached and calls == [1]
    redone = _step(config, store, parent, corpus_art, art(3), body, still_valid=lambda r, c: False)
    assert not redone.cached and redone.record.values == {"version": 2}


def test_metrics_outputs_and_parent_metrics(world, tmp_path):
    config, corpus, store, parent = world
    corpus_art = _corpus_artifact(tmp_path, corpus, store, config, parent)
    metrics = Metrics(name="metrics", uri=str(tmp_path / "kfp" / "metrics"), metadata={})
    run_step(
        "evaluate",
        config_json=config.model_dump_json(),
        store_dir=str(store),
        parent_run_id=parent,
        body=lambda ctx: StepResult(exports={}, metrics={"wer": 0.25, "mcd_dtw": 50.0}),
        inputs={"corpus": corpus_art},
        outputs={"metrics": metrics},
        metrics_to_parent=True,
    )
    assert metrics.metadata == {"wer": 0.25, "mcd_dtw": 50.0}
    client = mlflow.MlflowClient(config.tracking.tracking_uri)
    assert client.get_run(parent).data.metrics == {"wer": 0.25, "mcd_dtw": 50.0}


def test_bad_inputs_name_the_problem(world, tmp_path):
    config, corpus, store, parent = world
    stranger = Dataset(name="corpus", uri=str(tmp_path / "x"), metadata={})
    with pytest.raises(ValueError, match=r"corpus.*not made by a dubops pipeline step"):
        _step(config, store, parent, stranger, Model(name="d", uri=str(tmp_path / "d")), None)
    with pytest.raises(ValueError, match=r"config_json parameter: .*speech"):
        run_step(
            "validate_data",
            config_json=json.dumps({"speech": {"nope": 1}}),
            store_dir=str(store),
            parent_run_id=parent,
            data_dir=str(corpus),
            body=lambda ctx: StepResult(exports={}),
        )
    with pytest.raises(FileNotFoundError, match=r"no manifest\.parquet"):
        run_step(
            "validate_data",
            config_json=config.model_dump_json(),
            store_dir=str(store),
            parent_run_id=parent,
            data_dir=str(tmp_path / "empty"),
            body=lambda ctx: StepResult(exports={}),
        )


def test_parent_run_is_closed_once(world):
    config, _, _, parent = world
    assert run_status(config, parent) == "RUNNING"
    close_parent_run(config, parent, "FAILED")
    close_parent_run(config, parent, "FINISHED")  # already ended: left as it is
    assert run_status(config, parent) == "FAILED"


@pytest.mark.parametrize(
    ("state", "status"), [("SUCCEEDED", "FINISHED"), ("FAILED", "FAILED"), ("CANCELED", "KILLED")]
)
def test_exit_handler_ends_the_parent_run_as_the_pipeline_ended(world, state, status):
    config, _, store, parent = world
    if state == "FAILED":
        event = RunEvent("evaluate", "k", "failed", 1.0, 1.0, "ValueError('no test clips')")
        ArtifactStore(store).record_event(parent, event)
    final = SimpleNamespace(state=state, error_message="Task exit-handler-1 failed.")
    assert run_finalize(config.model_dump_json(), str(store), parent, "", final) == status
    run = mlflow.MlflowClient(config.tracking.tracking_uri).get_run(parent)
    assert run.info.status == status
    if state == "FAILED":
        assert run.data.tags["dubops.pipeline_error"] == "evaluate: ValueError('no test clips')"
    assert ArtifactStore(store).run_final(parent)["state"] == state


def test_a_cluster_run_opens_its_parent_in_the_first_step_and_finds_it_at_the_end(world):
    config, _, store, _ = world
    job = f"job-{uuid.uuid4()}"
    parent = resolve_parent_run(config, "", job, "v1")
    assert resolve_parent_run(config, "", job, "v1") == parent
    assert resolve_parent_run(config, "given", job, "v1") == "given"
    final = SimpleNamespace(state="SUCCEEDED", error_message=None)
    assert run_finalize(config.model_dump_json(), str(store), "", job, final) == "FINISHED"
    assert run_status(config, parent) == "FINISHED"
