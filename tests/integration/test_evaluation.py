"""``dubops eval`` end to end on a small corpus: baselines bracket the metrics."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dubops.cli.main import app
from dubops.config import load_config
from dubops.data.synthetic import generate_corpus

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_corpus")
    generate_corpus(load_config("tiny", overrides=["synth.clips=60"]), root)
    return root


def test_baselines_bracket_the_metrics(corpus, tmp_path):
    out = tmp_path / "report"
    result = runner.invoke(
        app,
        [
            "eval",
            "--ref",
            str(corpus),
            "--baseline",
            "ground-truth",
            "--baseline",
            "shuffled",
            "--baseline",
            "copy-synthesis",
            "--no-mos",
            "--out",
            str(out),
            "--json",
            "--mlflow",
            "--set",
            f"tracking.tracking_uri=sqlite:///{tmp_path}/mlruns.db",
            "--set",
            f"tracking.artifact_location={tmp_path}/mlartifacts",
        ],
    )
    assert result.exit_code == 0, result.output
    systems = json.loads(result.stdout)["systems"]
    truth, shuffled = systems["ground-truth"]["overall"], systems["shuffled"]["overall"]
    copy = systems["copy-synthesis"]["overall"]
    assert truth["mcd_dtw"] < 1e-6
    assert truth["spk_sim_target"] > 99
    assert shuffled["spk_sim_target"] < truth["spk_sim_target"] - 10
    assert shuffled["mcd_dtw"] > copy["mcd_dtw"] > truth["mcd_dtw"]
    # Same audio, same recogniser, each utterance decoded from the same initial state.
    assert truth["wer"] == truth["wer_ground_truth"]
    assert shuffled["wer"] > truth["wer"]
    assert truth["lse_distance"] < shuffled["lse_distance"]
    scoring = json.loads(result.stdout)["scoring"]
    assert scoring["systems"] == 3 and scoring["clips"] == truth["clips"]
    assert (out / "report.html").is_file() and (out / "summary.json").is_file()
    assert (out / "per_clip" / "shuffled.parquet").is_file()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns.db")
    (run,) = client.search_runs([client.get_experiment_by_name("dubops").experiment_id])
    assert run.data.metrics["ground-truth.overall.mcd_dtw"] < 1e-6
    assert run.data.tags["dubops.data_version"]
    names = [a.path for a in client.list_artifacts(run.info.run_id, "evaluation")]
    assert "evaluation/report.html" in names


def test_syncnet_weights_from_a_local_path_add_exact_lse(corpus, tmp_path):
    import torch

    from dubops.evaluation.syncnet import SyncNet

    torch.manual_seed(0)
    weights = tmp_path / "syncnet_v2.model"
    torch.save(SyncNet().state_dict(), weights)
    args = ["eval", "--ref", str(corpus), "--baseline", "ground-truth", "--no-mos"]
    args += ["--max-clips", "1", "--workers", "1", "--out", str(tmp_path / "r"), "--json"]
    result = runner.invoke(app, [*args, "--syncnet", str(weights)])
    assert result.exit_code == 0, result.output
    overall = json.loads(result.stdout)["systems"]["ground-truth"]["overall"]
    assert overall["clips"] == 1
    assert overall["syncnet_lse_d"] > 0 and "syncnet_lse_c" in overall
    assert "lse_distance" in overall  # the proxy, under its own name

    missing = runner.invoke(app, [*args, "--syncnet", str(tmp_path / "none.model")])
    assert missing.exit_code == 2 and "--syncnet" in missing.output
    assert "no such weights file" in missing.output


def test_unknown_mouth_tracker_is_named(corpus, tmp_path):
    result = runner.invoke(
        app, ["eval", "--ref", str(corpus), "--baseline", "ground-truth", "--mouth", "dlib"]
    )
    assert result.exit_code == 2
    assert "dlib" in result.output


def test_eval_needs_something_to_score(corpus):
    result = runner.invoke(app, ["eval", "--ref", str(corpus)])
    assert result.exit_code == 2
    assert "nothing to score" in result.output


def test_unknown_baseline_is_named(corpus, tmp_path):
    result = runner.invoke(
        app, ["eval", "--ref", str(corpus), "--baseline", "oracle", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "oracle" in result.output
