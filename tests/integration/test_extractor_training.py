"""Train the four extractors on the 48-clip corpus, then read the library's vectors back.

A short run (a few epochs each): what is checked is the contract the library
build codes against, the files, the versions, the CLI, and that the networks
actually learn (training accuracy of the text projection, the quickest to fit).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from dubops.cli.main import app
from dubops.config import load_config
from dubops.data.datasets import load_manifest
from dubops.emotion.footage_vectors import (
    ID_COLUMNS,
    MODALITIES,
    extract_footage_vectors,
    extractor_versions,
    load_extractors,
)
from dubops.errors import InputError

runner = CliRunner()
_SHORT = [
    "emotion.scene.fit.epochs=3",
    "emotion.face.fit.epochs=3",
    "emotion.text.fit.epochs=40",
    "emotion.audio.fit.epochs=2",
    "emotion.audio.max_seconds=2.0",
    "emotion.batch_size=16",
]


@pytest.fixture(scope="module")
def trained(small_synthetic_corpus, tmp_path_factory):
    from dubops.emotion.extractor_training import train_extractors

    config = load_config("tiny", overrides=_SHORT)
    out = tmp_path_factory.mktemp("extractors")
    ticks: list[tuple[int, int]] = []
    result = train_extractors(
        config,
        small_synthetic_corpus,
        out,
        progress=lambda d, t: ticks.append((d, t)),
    )
    return config, out, result, ticks


def test_training_writes_loadable_extractors(trained):
    _, out, result, ticks = trained
    for name in MODALITIES:
        assert (out / f"{name}.safetensors").is_file() and (out / f"{name}.json").is_file()
    assert not list(out.glob(".*tmp*")), "temp files left behind"
    summary = json.loads((out / "extractors.json").read_text())
    assert set(summary["accuracy"]) == set(MODALITIES)
    for acc in summary["accuracy"].values():
        assert {"train", "val", "test"} <= set(acc)
        assert all(0.0 <= a <= 1.0 for a in acc.values())
    assert result.versions == extractor_versions(out) == summary["versions"]
    assert ticks and ticks[-1][0] <= ticks[-1][1] and ticks[0][0] == 1
    assert set(load_extractors(out)) == set(MODALITIES)


def test_text_projection_learns(trained):
    """40 epochs on ~30 scripts: the projection must fit its training labels well above chance."""
    _, _, result, _ = trained
    assert result.accuracy["text"]["train"] > 0.6


def test_footage_vectors_contract(trained, small_synthetic_corpus):
    config, out, _, _ = trained
    seen: list[tuple[int, int]] = []
    table = extract_footage_vectors(
        config, small_synthetic_corpus, out, progress=lambda d, t: seen.append((d, t))
    )
    manifest = load_manifest(small_synthetic_corpus)
    assert list(table.columns) == [*ID_COLUMNS, *MODALITIES]
    assert len(table) == len(manifest)
    assert table["clip_id"].tolist() == manifest["clip_id"].tolist()
    assert table["audio_path"].tolist() == manifest["audio_path"].tolist()
    for name in MODALITIES:
        vectors = np.stack(table[name].to_list())
        assert vectors.dtype == np.float32 and vectors.shape == (len(table), 256)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert seen[-1] == (len(table), len(table))

    test = extract_footage_vectors(config, small_synthetic_corpus, out, splits=["test_s2"])
    assert set(test["split"]) == {"test_s2"}
    # Batching does not change a clip's vector.
    row = table.set_index("clip_id").loc[test["clip_id"].iloc[0]]
    for name in MODALITIES:
        np.testing.assert_allclose(test[name].iloc[0], row[name], atol=1e-5)


def test_missing_extractors_dir(small_synthetic_corpus, tmp_path):
    with pytest.raises(InputError, match="dubops train extractors"):
        extract_footage_vectors(load_config("tiny"), small_synthetic_corpus, tmp_path / "none")


def test_cli_help_and_bad_data(tmp_path):
    result = runner.invoke(app, ["train", "extractors", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--data", "--out", "--max-minutes", "--no-mlflow", "--json", "--set"):
        assert option in result.output
    bad = runner.invoke(app, ["train", "extractors", "--data", str(tmp_path), "--no-mlflow"])
    assert bad.exit_code == 2
    # One message (Rich may wrap it to the test terminal's width), no traceback.
    text = " ".join(bad.output.split())
    assert text.count("error:") == 1 and "Traceback" not in text
    assert text.startswith("error: --data") and "dubops data synth" in text
