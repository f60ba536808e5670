"""``dubops monitor drift|reference`` as users call them, on real logs and real MLflow stores.

The fast tests compare a log written by :class:`RequestLog` with a reference JSON
built from synthetic clips; the slow one registers the micro model with its bundled
reference, logs what the model itself makes of held-out clips, and checks the run
in ``dubops-monitoring`` and the version's ``dubops.last_drift_run`` tag.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dubops.cli.main import app
from dubops.monitoring.request_log import RequestLog
from tests.unit.test_batch_report import synthetic_clips

runner = CliRunner()
DRIFT_EXIT = 3


def write_log(folder: Path, features, vectors, version: str = "") -> Path:
    log = RequestLog(folder)
    for f, v in zip(features, vectors, strict=True):
        log.append(f, v, server="test", model_version=version)
    log.close()
    return folder


def store_sets(root: Path) -> list[str]:
    return [
        "--set",
        f"tracking.tracking_uri=sqlite:///{root}/mlruns.db",
        "--set",
        f"tracking.artifact_location={root}/artifacts",
    ]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict[str, Path]:
    """A reference JSON (80 clips, windows of 10) and a same and a shifted log."""
    from dubops.monitoring.reference import build_reference

    root = tmp_path_factory.mktemp("monitor")
    reference = build_reference(*synthetic_clips(80, seed=1), window=10, draws=300)
    return {
        "reference": reference.save(root / "drift_reference.json"),
        "same": write_log(root / "same", *synthetic_clips(40, seed=2)),
        "shifted": write_log(root / "shifted", *synthetic_clips(40, seed=3, shift=0.8)),
        "short": write_log(root / "short", *synthetic_clips(4, seed=4)),
    }


def drift(*args: str):
    return runner.invoke(app, ["monitor", "drift", *args])


def test_help_shows_examples():
    for command in ("drift", "reference"):
        result = runner.invoke(app, ["monitor", command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Examples" in result.output


def test_same_log_against_a_reference_file(synthetic, tmp_path):
    out = tmp_path / "report"
    result = drift(
        "--model", str(synthetic["reference"]), "--log", str(synthetic["same"]),
        "--out", str(out), "--no-track", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["drift_detected"] is False
    assert summary["rows"] == {"reference": 80, "current": 40}
    assert summary["source"]["model"] == str(synthetic["reference"])
    assert "mlflow_run" not in summary
    for name in ("report.html", "report.json", "evidently.json"):
        assert (out / name).is_file(), name


def test_shifted_log_is_drift_and_fail_on_drift_exits_3(synthetic, tmp_path):
    args = ["--model", str(synthetic["reference"]), "--log", str(synthetic["shifted"])]
    shown = drift(*args, "--out", str(tmp_path / "a"), "--no-track")
    assert shown.exit_code == 0, shown.output
    assert "DRIFT FOUND" in shown.stderr and "embedding_scene" in shown.stderr
    assert str(tmp_path / "a" / "report.html") in shown.stderr
    failed = drift(*args, "--out", str(tmp_path / "b"), "--no-track", "--fail-on-drift")
    assert failed.exit_code == DRIFT_EXIT, failed.output
    calm = drift(
        "--model", str(synthetic["reference"]), "--log", str(synthetic["same"]),
        "--out", str(tmp_path / "c"), "--no-track", "--fail-on-drift",
    )  # fmt: skip
    assert calm.exit_code == 0, calm.output
    assert "no drift found" in calm.stderr


def test_user_errors_name_the_option(synthetic, tmp_path):
    base = ["--model", str(synthetic["reference"]), "--no-track", "--out", str(tmp_path / "o")]
    short = drift(*base, "--log", str(synthetic["short"]))
    assert short.exit_code == 2
    assert "--log: 4 logged dubs" in short.stderr and "at least 10" in short.stderr
    missing = drift(*base, "--log", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "--log" in missing.stderr
    since = drift(*base, "--log", str(synthetic["same"]), "--since", "yesterday")
    assert since.exit_code == 2 and "--since 'yesterday'" in since.stderr
    recent = drift(*base, "--log", str(synthetic["same"]), "--since", "2999-01-01T00:00Z")
    assert recent.exit_code == 2 and "0 logged dubs" in recent.stderr
    model = drift("--model", str(tmp_path), "--log", str(synthetic["same"]), *base[2:])
    assert model.exit_code == 2 and "--model" in model.stderr


def test_tracked_report_of_a_reference_file(synthetic, tmp_path):
    """Without a registered version: a run in <experiment>-monitoring, no version tag."""
    import mlflow

    store = tmp_path / "mlflow"
    result = drift(
        "--model", str(synthetic["reference"]), "--log", str(synthetic["shifted"]),
        "--out", str(tmp_path / "r"), "--json", *store_sets(store),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run_id = json.loads(result.stdout)["mlflow_run"]
    run = mlflow.MlflowClient(f"sqlite:///{store}/mlruns.db").get_run(run_id)
    assert run.data.tags["dubops.model_uri"] == str(synthetic["reference"])
    assert "dubops.model_version" not in run.data.tags
    assert run.data.metrics["drift_detected"] == 1.0
    assert run.data.metrics["p_value.embedding_face"] < 0.01


@pytest.mark.slow
def test_registered_champion_end_to_end(served_champion, tmp_path):
    """Register the micro model (bundle with a reference), log its own view of held-out
    clips, report against models:/dubbing@champion: run tagged, version tagged."""
    import mlflow

    from tests.fixtures.served_model import describe_stages

    champion = served_champion
    stages = champion.stages
    features, vectors = describe_stages(stages, ["test_s1", "test_s2"])
    served = f"dubbing/{champion.version}"
    log = write_log(tmp_path / "log", features, vectors, version=served)
    sets = [a for s in champion.sets for a in ("--set", s)]
    model = ["--model", "models:/dubbing@champion"]

    result = drift(*model, "--log", str(log), "--out", str(tmp_path / "r"), "--json", *sets)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["source"]["model_version"] == served
    assert summary["rows"]["current"] == len(features)
    client = mlflow.MlflowClient(champion.sets[0].split("=", 1)[1])
    run = client.get_run(summary["mlflow_run"])
    assert client.get_experiment(run.info.experiment_id).name == "dubops-monitoring"
    assert run.data.tags["dubops.model_name"] == "dubbing"
    assert run.data.tags["dubops.model_version"] == str(champion.version)
    assert run.data.tags["dubops.model_uri"] == "models:/dubbing@champion"
    assert "drift_share" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "drift_report")}
    assert {"drift_report/report.html", "drift_report/report.json"} <= artifacts
    version = client.get_model_version("dubbing", str(champion.version))
    assert version.tags["dubops.last_drift_run"] == run.info.run_id

    # Dubs of another version only: said, with the flag that counts them anyway.
    other = write_log(tmp_path / "other", features, vectors, version="dubbing/99")
    refused = drift(*model, "--log", str(other), "--out", str(tmp_path / "no"), "--no-track", *sets)
    assert refused.exit_code == 2
    assert "dubbing/99" in refused.stderr and "--all-versions" in refused.stderr
    counted = drift(
        *model, "--log", str(other), "--out", str(tmp_path / "all"), "--no-track",
        "--all-versions", *sets,
    )  # fmt: skip
    assert counted.exit_code == 0, counted.output

    # `monitor reference` rebuilds one from the corpus; `drift --reference` uses it.
    ref = tmp_path / "ref.json"
    built = runner.invoke(
        app,
        ["monitor", "reference", *model, "--data", str(stages.corpus), "--max-clips", "12",
         "--out", str(ref), "--set", "monitoring.window=5", "--set", "monitoring.draws=200",
         "--json", *sets],
    )  # fmt: skip
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout) == {"reference": str(ref), "clips": 12, "window": 5}
    again = drift(
        *model, "--reference", str(ref), "--log", str(log), "--out", str(tmp_path / "again"),
        "--no-track", *sets,
    )  # fmt: skip
    assert again.exit_code == 0, again.output
