"""The registry on a real MLflow store: bundle, pyfunc round trip, gate, promotion, rollback.

Stage folders are real micro runs (``tests.fixtures.dubbing_stages``, built once
per session); the store is SQLite in a temp folder, and for the promotion race,
rollback, gate and the promotion lock also an ``mlflow server`` on PostgreSQL
(``tests.fixtures.mlflow_server``), as the cluster runs it. Versions for the gate and
promotion tests are registered through ``register_bundle`` from the ControlNet
bundle (no footage library to open), which takes well under a second each once
the first registration has loaded everything.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import multiprocessing
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
from typer.testing import CliRunner

from dubops.errors import InputError
from tests.fixtures.dubbing_stages import build_stages, micro_stage_config, store_config
from tests.fixtures.mlflow_server import mlflow_server_on_postgres

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stages(small_synthetic_corpus, tmp_path_factory):
    return build_stages(small_synthetic_corpus, tmp_path_factory.mktemp("stages"))


@pytest.fixture(scope="module")
def bundles(stages, tmp_path_factory):
    """(graph bundle with the corpus's example, ControlNet-only bundle with a synthetic one)."""
    from dubops.registry.bundle import assemble_bundle

    root = tmp_path_factory.mktemp("bundles")
    common = {
        "reasoner_dir": stages.reasoner,
        "extractors_dir": stages.extractors,
        "library_dir": stages.library,
    }
    graph = assemble_bundle(
        root / "graph", speech_dir=stages.graph, data_dir=stages.corpus, **common
    )
    plain = assemble_bundle(root / "controlnet", speech_dir=stages.controlnet, **common)
    return graph, plain


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """One SQLite store for the module (creating one costs seconds); a model name per test."""
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="session")
def mlflow_on_postgres() -> Iterator[str]:
    """An ``mlflow server`` on PostgreSQL for the session (~20 s to start): its URI."""
    with mlflow_server_on_postgres() as uri:
        yield uri


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request, store) -> tuple[str, ...]:
    """``--set`` values naming the store: the module's SQLite, or the PostgreSQL server."""
    if request.param == "sqlite":
        return (
            f"tracking.tracking_uri=sqlite:///{store}/mlruns.db",
            f"tracking.artifact_location={store}/artifacts",
        )
    return (f"tracking.tracking_uri={request.getfixturevalue('mlflow_on_postgres')}",)


def _store(store: Path, name: str):
    return store_config(store, f"registry.model_name={name}")


# A server named by $DUBOPS_TEST_MLFLOW_URI outlives a session: names new in each session.
_SESSION = uuid.uuid4().hex[:6]


def _config(sets: tuple[str, ...], name: str, *extra: str):
    return micro_stage_config(*sets, f"registry.model_name={name}-{_SESSION}", *extra)


def _cli_sets(config) -> list[str]:
    return [
        *("--set", f"tracking.tracking_uri={config.tracking.tracking_uri}"),
        *("--set", f"tracking.artifact_location={config.tracking.artifact_location}"),
        *("--set", f"registry.model_name={config.registry.model_name}"),
    ]


def _register(config, bundle: Path, **metrics: float) -> int:
    from dubops.registry.model_registry import register_bundle

    return register_bundle(config, bundle, metrics=metrics)


def _other_version_library(library: Path, tmp_path: Path) -> Path:
    """A copy of the library that says it is another version (as a rebuild would)."""
    copy = tmp_path / "library_rebuilt"
    shutil.copytree(library, copy)
    info = json.loads((copy / "library.json").read_text())
    info["version"] = "0123456789abcdef"
    (copy / "library.json").write_text(json.dumps(info))
    return copy


def test_bundle_holds_safetensors_and_settings_only(stages, bundles):
    from dubops.registry.bundle import read_bundle, verify_bundle

    graph, plain = bundles
    files = sorted(p.relative_to(graph).as_posix() for p in graph.rglob("*") if p.is_file())
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl", ".pickle"))]
    assert not [f for f in files if "checkpoints/" in f or "samples/" in f or "cache" in f]
    for needed in (
        "reasoner/model.safetensors",
        "reasoner/reasoner.json",
        "speech/dubbing.safetensors",
        "speech/graph.safetensors",
        "dit/dit.safetensors",
        "extractors/face.safetensors",
        "example/clip.mp4",
        "example/prompt.wav",
    ):
        assert needed in files, needed
    info = read_bundle(graph)
    library = json.loads((stages.library / "library.json").read_text())
    assert info.library_version == library["version"] and info.needs_library
    assert info.data_version == library["manifest_hash"]
    assert info.example["split"] == "test_s2"
    assert json.loads((graph / "speech/stage.json").read_text())["pretrain_dir"] == "../dit"
    assert not read_bundle(plain).needs_library
    assert verify_bundle(graph) == []
    tampered = graph.parent / "tampered"
    shutil.copytree(graph, tampered)
    (tampered / "speech/graph.json").write_text("{}")
    assert verify_bundle(tampered) == ["speech/graph.json"]
    from dubops.inference import DubbingPipeline
    from dubops.registry.bundle import BundleError

    with pytest.raises(BundleError, match=r"speech/graph.json.*assemble it again"):
        DubbingPipeline.from_bundle(tampered)
    assert not list(graph.parent.glob(".*tmp*")), "temp folders left behind"


def test_bundle_and_pipeline_refuse_a_library_of_another_version(stages, bundles, tmp_path):
    from dubops.feature_store.layout import LibraryError
    from dubops.inference import DubbingPipeline
    from dubops.registry.bundle import BundleError, assemble_bundle

    rebuilt = _other_version_library(stages.library, tmp_path)
    with pytest.raises(LibraryError, match="dubops library build") as caught:
        DubbingPipeline.from_bundle(bundles[0], library_dir=rebuilt)
    assert "0123456789abcdef" in str(caught.value)
    with pytest.raises(LibraryError, match=r"dubops library build.*--library DIR"):
        DubbingPipeline.from_bundle(bundles[0], library_dir=tmp_path / "nowhere")
    with pytest.raises(BundleError, match="library version"):
        assemble_bundle(
            tmp_path / "bad",
            reasoner_dir=stages.reasoner,
            speech_dir=stages.graph,
            extractors_dir=stages.extractors,
            library_dir=rebuilt,
        )
    assert not (tmp_path / "bad").exists()
    with pytest.raises(BundleError, match="reasoner-sft"):
        assemble_bundle(
            tmp_path / "bad",
            reasoner_dir=stages.controlnet,
            speech_dir=stages.graph,
            extractors_dir=stages.extractors,
            library_dir=stages.library,
        )


def test_pyfunc_round_trip_by_alias(stages, bundles, store, tmp_path):
    """Register, promote, load ``models:/dubbing@champion`` and dub a held-out clip."""
    import mlflow
    import pandas as pd

    from dubops.data.datasets import load_manifest
    from dubops.registry.model_registry import register_bundle
    from dubops.registry.promotion import promote
    from dubops.registry.store import registry_client
    from dubops.tracking import git_commit

    config = _store(store, "round_trip")
    name = config.registry.model_name
    metrics = {"mcd_dtw": 50.2, "wer": 0.377, "reasoner_format_validity": 1.0}
    baselines = {"mean-mel": {"mcd_dtw": 84.3, "wer": 1.0}}
    version = register_bundle(
        config, bundles[0], metrics=metrics, baselines=baselines, tags={"owner": "tests"}
    )
    client = registry_client(config)
    mv = client.get_model_version(name, str(version))
    tags = mv.tags
    assert {k: float(tags[f"metric.{k}"]) for k in metrics} == metrics
    assert float(tags["baseline.mean-mel.mcd_dtw"]) == 84.3
    run = client.get_run(tags["run_id"])
    assert tags["pipeline_run_id"] == run.info.run_id  # not nested: its own run
    assert run.data.metrics["mcd_dtw"] == 50.2
    assert (
        tags["data_version"] == json.loads((bundles[0] / "bundle.json").read_text())["data_version"]
    )
    assert tags["library_version"] and tags["owner"] == "tests"
    assert tags["git_commit"] == (git_commit() or "unknown")
    assert client.get_registered_model(name).aliases == {"challenger": version}

    promote(config, version, reason="round trip")
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    local = Path(mlflow.artifacts.download_artifacts(mv.source))
    assert (local / "MLmodel").is_file() and (local / "serving_input_example.json").is_file()
    assert not [p for p in local.rglob("*") if p.suffix in (".pkl", ".pickle", ".bin", ".pt")]
    # The environment is installable: dubops comes as the wheel logged with the model.
    requirements = (local / "requirements.txt").read_text().split()
    wheel = [r for r in requirements if r.endswith(".whl")]
    assert len(wheel) == 1 and (local / wheel[0]).is_file(), requirements
    assert not any(r.startswith("dubops==") for r in requirements)
    schema = model.metadata.get_input_schema()
    assert {"video_b64", "video_path", "script", "prompt_b64", "prompt_path"} <= set(
        schema.input_names()
    )

    clip = load_manifest(stages.corpus, ["test_s2"]).iloc[1]
    by_path = {
        "video_path": str(stages.corpus / clip.video_path),
        "script": clip.script,
        "prompt_path": str(stages.corpus / clip.prompt_audio_path),
        "react": clip.react,
    }
    # Paths are read only under the allowed roots: none by default.
    with pytest.raises(InputError, match="outside the allowed folders"):
        model.predict(pd.DataFrame([by_path]))
    by_bytes = {
        "video_b64": base64.b64encode((stages.corpus / clip.video_path).read_bytes()).decode(),
        "script": clip.script,
        "prompt_b64": base64.b64encode(
            (stages.corpus / clip.prompt_audio_path).read_bytes()
        ).decode(),
        "emotion": "joy",
    }
    out = model.predict(pd.DataFrame([by_bytes]))
    row = out.iloc[0]
    wave, rate = sf.read(io.BytesIO(base64.b64decode(row.audio_b64)))
    assert abs(len(wave) / rate - clip.video_seconds) < 0.05
    assert row.sample_rate == rate and row.wav_path == ""
    assert row.emotion == "joy" and json.loads(row.conclusion_source)["emotion"] == "override"
    assert row.scene_type in ("dialogue", "monologue", "narration")
    assert bool(row.fallback) == (not bool(row.parse_ok))
    assert set(json.loads(row.seconds)) >= {"reason", "embed", "retrieve", "generate", "total"}
    with pytest.raises(InputError, match="emotion: 'bored' is not one of"):
        model.predict(pd.DataFrame([{**by_bytes, "emotion": "bored"}]))
    # With the corpus as an allowed root, paths work; wavs go only to the model's folder.
    allowed = mlflow.pyfunc.load_model(
        f"models:/{name}@champion",
        model_config={"allowed_roots": str(stages.corpus), "out_dir": str(tmp_path / "dubbed")},
    )
    written = allowed.predict(pd.DataFrame([by_path]), params={"audio": "path"}).iloc[0]
    assert Path(written.wav_path).parent == tmp_path / "dubbed"
    # The logged input example is the bundle's own clip, by bundle:// paths.
    serving = json.loads((local / "serving_input_example.json").read_text())
    assert serving["params"] == {"audio": "base64"}
    assert "bundle://example/clip.mp4" in serving["dataframe_split"]["data"][0]
    example = model.predict(model.input_example, params=serving["params"]).iloc[0]
    assert example.wav_path == "" and len(example.audio_b64) > 1000


def test_a_registered_model_whose_bundle_was_replaced_is_refused(stages, bundles, store):
    """The registry's bundle_hash tag, not the logged bundle.json, decides what may load."""
    import mlflow

    from dubops.inference.loading import load_pipeline
    from dubops.registry.bundle import BundleError
    from dubops.registry.model_registry import register_bundle
    from dubops.registry.store import registry_client

    config = _store(store, "tamper")
    name = config.registry.model_name
    version = register_bundle(config, bundles[0], metrics={"mcd_dtw": 50.0})
    pipeline, info = load_pipeline(config, f"models:/{name}/{version}")
    assert info["version"] == version and pipeline.model_version == f"{name}/{version}"
    pipeline.close()
    registry_client(config).set_model_version_tag(name, str(version), "bundle_hash", "f" * 16)
    with pytest.raises(BundleError, match="registered version records ffff"):
        load_pipeline(config, f"models:/{name}/{version}")
    # MLflow's own loader with the registry's value as the model config: refused too.
    with pytest.raises(BundleError):
        mlflow.pyfunc.load_model(
            f"models:/{name}/{version}", model_config={"bundle_hash": "f" * 16}
        )


@pytest.mark.slow
def test_mlflow_models_predict_dubs_the_input_example(bundles, store, tmp_path):
    """MLflow's own CLI, in a fresh process, serves the champion's input example."""
    import os

    import mlflow

    from dubops.registry.model_registry import register_bundle
    from dubops.registry.promotion import promote

    config = _store(store, "cli_predict")
    version = register_bundle(config, bundles[0], metrics={"mcd_dtw": 50.0})
    promote(config, version)
    uri = f"models:/{config.registry.model_name}@champion"
    example = Path(mlflow.artifacts.download_artifacts(f"{uri}/serving_input_example.json"))
    out = tmp_path / "prediction.json"
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    done = subprocess.run(
        [
            str(mlflow_cli),
            *("models", "predict", "-m", uri, "-i", str(example), "-t", "json"),
            *("--env-manager", "local", "-o", str(out)),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": config.tracking.tracking_uri},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["predictions"]
    assert len(rows) == 1 and len(rows[0]["audio_b64"]) > 1000
    assert rows[0]["sample_rate"] == 24_000 and rows[0]["audio_seconds"] > 0.5


def test_gate_against_champion_with_tolerances_logs_its_table(bundles, any_store):
    import mlflow

    from dubops.registry.gate import run_gate
    from dubops.registry.promotion import promote
    from dubops.registry.store import registry_client
    from dubops.tracking import start_run

    config = _config(any_store, "gate")
    name = config.registry.model_name
    plain = bundles[1]
    v1 = _register(config, plain, mcd_dtw=50.0, wer=0.40, emo_acc=0.50)
    promote(config, v1)
    v2 = _register(config, plain, mcd_dtw=49.0, wer=0.45, emo_acc=0.55)  # wer worse by 0.05
    with start_run(config, "gate") as run:
        refused = run_gate(config)  # the challenger alias: v2
    assert (refused.challenger, refused.champion, refused.passed) == (v2, v1, False)
    assert [r["metric"] for r in refused.rows if not r["passed"]] == ["wer"]
    client = registry_client(config)
    logged = client.get_run(run.run_id)
    assert logged.data.metrics["gate_passed"] == 0.0
    assert logged.data.tags["gate.decision"] == "refused"
    table = json.loads(
        Path(mlflow.artifacts.download_artifacts(run_id=run.run_id, artifact_path="gate"))
        .joinpath("decision.json")
        .read_text()
    )
    assert table["passed"] is False and len(table["rows"]) == len(refused.rows)
    assert client.get_model_version(name, str(v2)).tags["gate.passed"] == "false"

    v3 = _register(config, plain, mcd_dtw=50.5, wer=0.41, emo_acc=0.49)  # all within tolerance
    passed = run_gate(config)
    assert passed.passed and passed.challenger == v3, passed.markdown()


def test_first_model_needs_to_beat_the_baselines(bundles, store):
    from dubops.registry.gate import run_gate
    from dubops.registry.model_registry import register_bundle

    config = _store(store, "first_model")
    baselines = {"mean-mel": {"mcd_dtw": 84.0, "emo_acc": 0.19}, "shuffled": {"mcd_dtw": 86.0}}
    weak = register_bundle(
        config, bundles[1], metrics={"mcd_dtw": 85.0, "emo_acc": 0.5}, baselines=baselines
    )
    decision = run_gate(config, weak)
    assert not decision.passed and decision.champion is None
    assert [(r["reference"], r["metric"]) for r in decision.rows if not r["passed"]] == [
        ("mean-mel", "mcd_dtw")
    ]
    good = register_bundle(
        config, bundles[1], metrics={"mcd_dtw": 60.0, "emo_acc": 0.5}, baselines=baselines
    )
    assert run_gate(config).passed and run_gate(config).challenger == good


def test_rollback_restores_the_previous_champion_and_survives_a_restart(bundles, any_store):
    from dubops.registry.promotion import champion_history, promote, rollback
    from dubops.registry.store import CHAMPION, RegistryError, alias_version, registry_client

    config = _config(any_store, "rollback")
    name = config.registry.model_name
    v1, v2, v3 = (_register(config, bundles[1], mcd_dtw=50.0 - i) for i in range(3))
    for v in (v1, v2, v3):
        promote(config, v, reason=f"step {v}")
    assert [h["version"] for h in champion_history(config)] == [v1, v2, v3]
    assert rollback(config) == v2
    client = registry_client(config)
    assert alias_version(client, name, CHAMPION) == v2
    # Another process, as after a restart, reads the same history and goes one further back.
    cli = [sys.executable, "-m", "dubops.cli.main", "registry", "rollback", "--json"]
    done = subprocess.run(
        [*cli, *_cli_sets(config)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"champion": v1, "rolled_back": v2}
    assert alias_version(client, name, CHAMPION) == v1
    with pytest.raises(RegistryError, match="no earlier champion"):
        rollback(config)
    assert client.get_model_version(name, str(v3)).tags.get("rolled_back_at")


def _promote_in_process(args: tuple) -> str:
    """Runs in a child process: connect, wait for the start signal, then promote.

    Reading the champion is slowed down (0.5 s) so that, were promotions not
    serialised, both children would read the old champion before either moved it.
    """
    from dubops.registry import promotion
    from dubops.registry.store import registry_client

    sets, name, version, expected, start, lock_dir = args
    lock = [f"registry.lock_dir={lock_dir}"] if lock_dir else []
    config = micro_stage_config(*sets, f"registry.model_name={name}", *lock)
    registry_client(config)  # connected before the race starts
    read = promotion.alias_version

    def slow_read(*a, **k):
        found = read(*a, **k)
        time.sleep(0.5)
        return found

    promotion.alias_version = slow_read
    start.wait(60)
    try:
        promotion.promote(config, version, reason=f"race {version}", expected_champion=expected)
    except promotion.PromotionConflictError:
        return "conflict"
    return "promoted"


def test_two_concurrent_promotions_leave_exactly_one_champion(bundles, any_store, tmp_path):
    """On PostgreSQL, two processes that share no lock folder: the server's lock serialises."""
    from dubops.registry.lock import lock_kind
    from dubops.registry.promotion import champion_history, promote
    from dubops.registry.server_lock import lock_model_name
    from dubops.registry.store import CHAMPION, alias_version, registry_client

    config = _config(any_store, "race")
    name = config.registry.model_name
    on_server = lock_kind(config) == "tracking-server"
    assert on_server == any_store[0].startswith("tracking.tracking_uri=http")
    v1, v2, v3 = (_register(config, bundles[1], mcd_dtw=50.0 - i) for i in range(3))
    promote(config, v1)
    # SQLite: one host, the lock file beside the store. The server's two processes stand
    # for two hosts: each has a lock folder of its own, so no file lock can serialise them.
    lock_dirs = [tmp_path / "host_a", tmp_path / "host_b"] if on_server else [None, None]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Event()
        with context.Pool(2) as pool:
            # Both challengers were gated against champion v1; only one may replace it.
            jobs = [
                (any_store, name, v, v1, start, d) for v, d in zip((v2, v3), lock_dirs, strict=True)
            ]
            pending = pool.map_async(_promote_in_process, jobs)
            start.set()
            outcomes = pending.get(timeout=240)
    assert sorted(outcomes) == ["conflict", "promoted"]
    winner = (v2, v3)[outcomes.index("promoted")]
    client = registry_client(config)
    assert alias_version(client, name, CHAMPION) == winner
    history = champion_history(config)
    assert [h["version"] for h in history] == [v1, winner]
    assert history[-1]["previous"] == v1
    if on_server:  # every ticket was released
        assert client.search_model_versions(f"name='{lock_model_name(config)}'") == []


# A process on "another host" (its own lock folder): takes the promotion lock, says so, and
# on a line from stdin releases it, or on "die" exits at once, leaving its ticket behind.
_HOLDER = """
import os, sys
from tests.fixtures.dubbing_stages import micro_stage_config
from dubops.registry.lock import promotion_lock

with promotion_lock(micro_stage_config(*sys.argv[1:])):
    print("held", flush=True)
    if sys.stdin.readline().strip() == "die":
        os._exit(0)
"""


def _start_holder(*sets: str) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, *sets],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert holder.stdout.readline().strip() == "held", "the holder did not take the lock"
    return holder


def test_server_lock_makes_another_host_wait_renews_its_lease_and_names_the_holder(
    mlflow_on_postgres, tmp_path
):
    """A holder keeps the lock past its lease (renewed); a waiter times out naming it."""
    from dubops.registry.lock import promotion_lock
    from dubops.registry.store import RegistryError

    sets = (
        f"tracking.tracking_uri={mlflow_on_postgres}",
        f"registry.model_name=lock_held-{_SESSION}",
    )
    lease = "registry.lock_lease_s=1"
    holder = _start_holder(*sets, lease, f"registry.lock_dir={tmp_path / 'host_a'}")
    try:
        # Waiting 3 leases: a lease that were not renewed would be taken over meanwhile.
        waiter = micro_stage_config(
            *sets, lease, "registry.lock_timeout_s=3", f"registry.lock_dir={tmp_path / 'host_b'}"
        )
        started = time.monotonic()
        with pytest.raises(RegistryError) as caught, promotion_lock(waiter):
            pass
        assert time.monotonic() - started >= 3
        message = " ".join(str(caught.value).split())
        assert f"@{socket.gethostname()}:{holder.pid} has held it since 20" in message
        assert "raise registry.lock_timeout_s" in message
        assert (
            f"delete version 1 of the registered model 'lock_held-{_SESSION}.promotion-lock'"
            in (message)
        )
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    with promotion_lock(waiter) as ticket:  # released: free at once
        assert ticket.version == 3  # after the holder's ticket and the waiter's first


def test_server_lock_is_taken_over_from_a_holder_that_died(mlflow_on_postgres, caplog):
    """A holder killed inside the lock stops renewing; the next one takes over after a lease."""
    from dubops.registry.lock import promotion_lock
    from dubops.registry.server_lock import lock_model_name
    from dubops.registry.store import registry_client

    sets = (
        f"tracking.tracking_uri={mlflow_on_postgres}",
        f"registry.model_name=lock_dead-{_SESSION}",
        "registry.lock_lease_s=1.5",
    )
    holder = _start_holder(*sets)
    holder.communicate("die\n", timeout=60)  # gone, its ticket still in the registry
    config = micro_stage_config(*sets, "registry.lock_timeout_s=30")
    client = registry_client(config)
    model = lock_model_name(config)
    assert [v.version for v in client.search_model_versions(f"name='{model}'")] == ["1"]
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), promotion_lock(config) as ticket:
        waited = time.monotonic() - started
        live = [v.version for v in client.search_model_versions(f"name='{model}'")]
    assert live == [str(ticket.version)] and waited < 10
    taken = [r.getMessage() for r in caplog.records if "taking over" in r.getMessage()]
    assert len(taken) == 1 and f":{holder.pid} (ticket v1) stopped renewing" in taken[0]


def test_cli_list_show_compare_promote_and_clear_errors(bundles, store):
    from dubops.cli.main import app

    config = _store(store, "cli")
    name = config.registry.model_name
    sets = _cli_sets(config)

    empty = runner.invoke(app, ["registry", "list", *sets])
    assert empty.exit_code == 2 and f"no model {name!r}" in " ".join(empty.output.split())

    from dubops.registry.model_registry import register_bundle

    baselines = {"mean-mel": {"mcd_dtw": 84.0, "wer": 1.0}}
    v1 = register_bundle(
        config, bundles[1], metrics={"mcd_dtw": 60.0, "wer": 0.5}, baselines=baselines
    )
    promoted = runner.invoke(app, ["registry", "promote", str(v1), "--json", *sets])
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.stdout) == {"promoted": True, "champion": v1, "previous": None}
    v2 = register_bundle(config, bundles[1], metrics={"mcd_dtw": 70.0, "wer": 0.4})
    refused = runner.invoke(app, ["registry", "promote", "challenger", "--json", *sets])
    assert refused.exit_code == 1
    gate_rows = json.loads(refused.stdout)["gate"]["rows"]
    assert [r["metric"] for r in gate_rows if not r["passed"]] == ["mcd_dtw"]

    listed = json.loads(runner.invoke(app, ["registry", "list", "--json", *sets]).stdout)
    assert [(v["version"], v["aliases"]) for v in listed["versions"]] == [
        (v1, ["champion"]),
        (v2, ["challenger"]),
    ]
    shown = json.loads(runner.invoke(app, ["registry", "show", "champion", "--json", *sets]).stdout)
    assert shown["version"] == v1 and shown["metrics"]["wer"] == 0.5
    assert shown["champion_history"][0]["version"] == v1
    compared = json.loads(
        runner.invoke(
            app, ["registry", "compare", "champion", "challenger", "--json", *sets]
        ).stdout
    )
    rows = {r["metric"]: r for r in compared["rows"]}
    assert rows["mcd_dtw"]["better"] == f"v{v1}" and rows["wer"]["better"] == f"v{v2}"
    assert rows["wer"]["b_minus_a"] == pytest.approx(-0.1)
    table = runner.invoke(app, ["registry", "compare", str(v1), str(v2), *sets])
    assert table.exit_code == 0 and "mcd_dtw" in table.output

    unknown = runner.invoke(app, ["registry", "show", "42", *sets])
    assert unknown.exit_code == 2 and "no version 42" in unknown.output
    alias = runner.invoke(app, ["registry", "show", "staging", *sets])
    assert alias.exit_code == 2 and "staging" in alias.output
    forced = runner.invoke(app, ["registry", "promote", str(v2), "--force", *sets])
    assert forced.exit_code == 0, forced.output
    back = runner.invoke(app, ["registry", "rollback", "--json", *sets])
    assert json.loads(back.stdout) == {"champion": v1, "rolled_back": v2}


def test_registering_inside_a_pipeline_run_records_both_runs(bundles, store):
    from dubops.registry.model_registry import register_bundle
    from dubops.registry.store import registry_client
    from dubops.tracking import start_run

    config = _store(store, "nested")
    name = config.registry.model_name
    with start_run(config, "pipeline") as parent, start_run(config, "step", nested=True) as step:
        inside = register_bundle(config, bundles[1], metrics={"wer": 0.5})
    client = registry_client(config)
    tags = client.get_model_version(name, str(inside)).tags
    assert (tags["run_id"], tags["pipeline_run_id"]) == (step.run_id, parent.run_id)
    # Into a finished run named by id: logged there, and the run stays finished.
    later = register_bundle(config, bundles[1], metrics={"wer": 0.4}, run_id=step.run_id)
    run = client.get_run(step.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["wer"] == 0.4
    assert client.get_model_version(name, str(later)).tags["pipeline_run_id"] == parent.run_id
    assert client.get_model_version(name, str(later)).run_id == step.run_id


def test_gate_compares_only_versions_measured_on_the_same_data_and_test_set(bundles, store):
    from dubops.registry.gate import evaluation_tags, run_gate
    from dubops.registry.model_registry import register_bundle
    from dubops.registry.promotion import GateRefusedError, promote
    from dubops.registry.store import registry_client

    config = _store(store, "like_with_like")
    name = config.registry.model_name
    plain = bundles[1]
    data = json.loads((plain / "bundle.json").read_text())["data_version"]
    test_set = evaluation_tags(["test_s1", "test_s2"], 119)

    def register(wer: float, **tags: str) -> int:
        return register_bundle(config, plain, metrics={"mcd_dtw": 50.0, "wer": wer}, tags=tags)

    v1 = register(0.40, **test_set)
    promote(config, v1)
    v2 = register(0.30, **test_set, **{"dubops.data_version": "another-corpus"})  # better
    refused = run_gate(config)
    assert not refused.passed and refused.champion == v1
    assert f"v{v1} was measured on data version {data} / test set test_s1+test_s2 (119" in (
        refused.reason
    )
    assert f"v{v2} on data version another-corpus" in refused.reason
    tags = registry_client(config).get_model_version(name, str(v2)).tags
    assert tags["gate.passed"] == "false"
    assert f"dubops registry promote v{v2} --force" in tags["gate.reason"]
    with pytest.raises(GateRefusedError, match="do not compare"):
        promote(config, v2, require_gate=True)

    v3 = register(0.30, **evaluation_tags(["test_s1"], 60))  # same corpus, another test set
    assert "test set test_s1 (60 clips)" in run_gate(config).reason
    v4 = register(0.30, **test_set)  # measured alike: compared as before
    passed = run_gate(config)
    assert passed.passed and passed.challenger == v4 and passed.notes == [], passed.markdown()
    v5 = register(0.30)  # registered without the test set: compared, with a note
    noted = run_gate(config)
    assert noted.passed and noted.notes == [
        f"test sets could not be checked: not recorded on v{v5}"
    ]
    assert registry_client(config).get_model_version(name, str(v5)).tags["gate.notes"]
    assert v3 != v4


def test_history_is_written_before_the_alias_moves(bundles, store, monkeypatch):
    """A death between the two steps leaves the intended champion in the history."""
    import mlflow

    from dubops.registry.listing import show_version
    from dubops.registry.promotion import champion_history, promote, rollback
    from dubops.registry.store import CHAMPION, alias_version, registry_client

    config = _store(store, "crash")
    name = config.registry.model_name
    client = registry_client(config)
    v1, v2, v3 = (_register(config, bundles[1], mcd_dtw=50.0 - i) for i in range(3))
    promote(config, v1)
    promote(config, v2)
    move = mlflow.MlflowClient.set_registered_model_alias

    def dies_at_the_champion(self, model, alias, version):
        if alias == CHAMPION:
            raise RuntimeError("the process died here")
        return move(self, model, alias, version)

    def history() -> list[int]:
        return [h["version"] for h in champion_history(config)]

    monkeypatch.setattr(mlflow.MlflowClient, "set_registered_model_alias", dies_at_the_champion)
    with pytest.raises(RuntimeError, match="died"):
        promote(config, v3, reason="interrupted")
    assert alias_version(client, name, CHAMPION) == v2
    assert history() == [v1, v2, v3] and champion_history(config)[-1]["previous"] == v2
    top = show_version(config, "champion")["champion_history"][-1]
    assert top["pending"] and f"promote v{v3} again" in top["note"]
    monkeypatch.undo()
    promote(config, v3)  # a later promotion replaces the dangling entry, no duplicate
    assert history() == [v1, v2, v3] and alias_version(client, name, CHAMPION) == v3

    monkeypatch.setattr(mlflow.MlflowClient, "set_registered_model_alias", dies_at_the_champion)
    with pytest.raises(RuntimeError, match="died"):
        rollback(config)
    assert alias_version(client, name, CHAMPION) == v3 and history() == [v1, v2]
    top = show_version(config, "champion")["champion_history"][-1]
    assert top["pending"] and "dubops registry rollback" in top["note"]
    monkeypatch.undo()
    assert rollback(config) == v2  # finishes the interrupted rollback, not one further
    assert alias_version(client, name, CHAMPION) == v2 and history() == [v1, v2]

    # An interrupted promotion on top is skipped by rollback: back to v1, not to v3.
    monkeypatch.setattr(mlflow.MlflowClient, "set_registered_model_alias", dies_at_the_champion)
    with pytest.raises(RuntimeError, match="died"):
        promote(config, v3)
    monkeypatch.undo()
    assert rollback(config) == v1 and history() == [v1]
    assert "pending" not in show_version(config, "champion")["champion_history"][-1]
