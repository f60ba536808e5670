"""The ``dubops`` command line as users call it: help, config errors, JSON output, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
from typer.testing import CliRunner

from dubops.cli.main import app
from dubops.data.layout import CorpusLayout
from tests.fixtures.corpus import build_fixture_corpus

runner = CliRunner()


def test_help_imports_no_heavy_library():
    """``dubops --help`` must stay instant: torch, mlflow, GE load only when used."""
    code = (
        "import sys; from typer.testing import CliRunner; from dubops.cli.main import app;"
        "r = CliRunner().invoke(app, ['data', '--help']); assert r.exit_code == 0, r.output;"
        "heavy = [m for m in ('torch', 'mlflow', 'great_expectations', 'av', 'pandas')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_data_command_has_help():
    for command in ("synth", "validate", "report", "import"):
        result = runner.invoke(app, ["data", command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_bad_override_names_the_field(tmp_path):
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path), "--set", "synth.clipz=3"])
    assert result.exit_code == 2
    assert "synth.clipz" in result.output
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path), "--preset", "huge"])
    assert result.exit_code == 2
    assert "unknown preset" in result.output


def test_synth_json_then_reuse(tmp_path):
    out = tmp_path / "corpus"
    args = ["data", "synth", "--out", str(out), "--clips", "4", "--workers", "1", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    info = json.loads(first.stdout)
    assert info["clips"] == 4 and info["reused"] is False
    second = json.loads(runner.invoke(app, args).stdout)
    assert second["reused"] is True


def test_validate_exit_codes_and_json(tmp_path):
    root = build_fixture_corpus(tmp_path / "c")
    ok = runner.invoke(app, ["data", "validate", str(root), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["ok"] is True

    layout = CorpusLayout(root)
    frame = pd.read_parquet(layout.manifest)
    frame.loc[0, "emotion"] = "boredom"
    frame.to_parquet(layout.manifest, index=False)
    bad = runner.invoke(app, ["data", "validate", str(root), "--json"])
    assert bad.exit_code == 1
    failures = json.loads(bad.stdout)["failures"]
    assert any(f["column"] == "emotion" for f in failures)
    human = runner.invoke(app, ["data", "validate", str(root)])
    assert human.exit_code == 1
    assert "emotion" in human.output and "Traceback" not in human.output


def test_validate_missing_corpus_is_a_message(tmp_path):
    result = runner.invoke(app, ["data", "validate", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "manifest" in result.output and "Traceback" not in result.output


def test_import_v2c_and_grid_from_the_command_line(tmp_path):
    from tests.fixtures.sources import build_grid_source, build_v2c_source

    for fmt, build in (("v2c", build_v2c_source), ("grid", build_grid_source)):
        src = build(tmp_path / f"{fmt}_src")
        out = tmp_path / f"{fmt}_out"
        result = runner.invoke(app, ["data", "import", fmt, str(src), "--out", str(out), "--json"])
        assert result.exit_code == 0, result.output
        assert (out / "manifest.parquet").is_file()
        valid = runner.invoke(app, ["data", "validate", str(out)])
        assert valid.exit_code == 0, valid.output


def test_import_from_a_wrong_folder_is_a_message(tmp_path):
    result = runner.invoke(app, ["data", "import", "v2c", str(tmp_path / "nope"), "--out", "x"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "nope" in result.output
