"""The demo's path end to end on a small corpus: synth -> validate -> report, via the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dubops.cli.main import app

pytestmark = pytest.mark.slow
runner = CliRunner()


def test_synth_validate_report(tmp_path):
    corpus = tmp_path / "tiny"
    synth = runner.invoke(app, ["data", "synth", "--out", str(corpus), "--clips", "48", "--json"])
    assert synth.exit_code == 0, synth.output
    assert json.loads(synth.stdout)["clips"] == 48

    valid = runner.invoke(app, ["data", "validate", str(corpus), "--json"])
    assert valid.exit_code == 0, valid.output

    report = runner.invoke(
        app, ["data", "report", str(corpus), "--json", "--set", "report.wer_clips=6"]
    )
    assert report.exit_code == 0, report.output
    figures = json.loads(report.stdout)
    for key in (
        "speaker_id_accuracy",
        "emotion_prosody_accuracy",
        "mouth_env_corr_talkers",
        "mouth_env_corr_silent",
        "scene_type_accuracy",
        "wer",
    ):
        assert figures[key] is not None, key
    # Lip-sync is built in, so even 48 clips show it; the rest need the full corpus.
    assert figures["mouth_env_corr_talkers"] > 0.8
    assert abs(figures["mouth_env_corr_silent"]) < 0.2
    assert figures["wer_mode"] == "corpus-lm"
