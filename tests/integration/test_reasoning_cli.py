"""``dubops reason`` and ``dubops eval --reasoning`` through the real CLI."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from dubops.cli.main import app


def test_majority_baseline_is_scored_by_eval(small_synthetic_corpus, tmp_path):
    runner = CliRunner()
    answers = tmp_path / "majority.jsonl"
    done = runner.invoke(
        app,
        [
            "reason",
            "--data",
            str(small_synthetic_corpus),
            "--baseline",
            "majority",
            "-o",
            str(answers),
        ],
    )
    assert done.exit_code == 0, done.output
    scored = runner.invoke(
        app,
        [
            "eval",
            "--ref",
            str(small_synthetic_corpus),
            "--reasoning",
            str(answers),
            "-o",
            str(tmp_path / "eval"),
            "--json",
        ],
    )
    assert scored.exit_code == 0, scored.output
    result = json.loads(scored.stdout[scored.stdout.index("{") :])
    overall = result["reasoning"]["overall"]
    rows = pd.read_parquet(small_synthetic_corpus / "manifest.parquet")
    train, test = rows[rows.split == "train"], rows[rows.split.isin(["test_s1", "test_s2"])]
    majority = (
        train.scene_type.value_counts().sort_index().sort_values(ascending=False, kind="stable")
    )
    assert overall["format_validity"] == 1.0
    assert overall["clips"] == len(test)
    assert overall["scene_type_accuracy"] == (test.scene_type == majority.index[0]).mean()
    assert set(result["reasoning"]) == {"overall", *test.split.unique()}
    assert (tmp_path / "eval" / "reasoning.json").is_file()


def test_reason_without_a_model_says_what_to_pass(small_synthetic_corpus):
    done = CliRunner().invoke(app, ["reason", "--data", str(small_synthetic_corpus)])
    assert done.exit_code != 0
    assert "--model" in done.output and "Traceback" not in done.output


def test_eval_with_a_reasoning_file_missing_clips_names_the_fix(small_synthetic_corpus, tmp_path):
    partial = tmp_path / "partial.jsonl"
    partial.write_text(json.dumps({"clip_id": "nope", "text": "x"}) + "\n")
    done = CliRunner().invoke(
        app,
        [
            "eval",
            "--ref",
            str(small_synthetic_corpus),
            "--reasoning",
            str(partial),
            "-o",
            str(tmp_path),
        ],
    )
    assert done.exit_code != 0
    assert "dubops reason" in done.output
