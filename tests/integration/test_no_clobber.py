"""Commands that replace an output folder replace only a folder they made.

``dubops library build --out`` and bundle assembly write a temp folder and rename it
over the target. A target that holds someone's files (no ``library.json`` /
``bundle.json``) is refused before anything is written, and every file stays; an
empty folder, or one they made, is replaced as before.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dubops.config import load_config
from dubops.errors import InputError
from dubops.feature_store.build import build_library
from dubops.feature_store.synthetic import clustered_vectors
from tests.fixtures.dubbing_stages import build_stages


def _users_folder(root: Path) -> Path:
    folder = root / "my_work"
    (folder / "notes").mkdir(parents=True)
    (folder / "notes" / "draft.txt").write_text("three weeks of notes")
    (folder / "take1.wav").write_bytes(b"RIFF....")
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def _no_temp_folders(root: Path) -> None:
    assert not [p.name for p in root.iterdir() if p.name.startswith(".")], "temp folders left"


@pytest.fixture(scope="module")
def vectors(small_synthetic_corpus) -> pd.DataFrame:
    return clustered_vectors(pd.read_parquet(small_synthetic_corpus / "manifest.parquet"), seed=5)


def test_library_build_refuses_a_users_folder_and_deletes_nothing(
    tmp_path, small_synthetic_corpus, vectors
):
    from dubops.cli.main import app

    config = load_config("tiny")
    folder = _users_folder(tmp_path)
    before = _files(folder)
    with pytest.raises(InputError, match=r"--out .*my_work.*no library\.json") as caught:
        build_library(config, small_synthetic_corpus, folder, vectors=vectors)
    assert "choose another --out, or delete the folder yourself" in str(caught.value)
    assert _files(folder) == before
    # The command refuses before it looks at the extractors (any folder passes --extractors).
    extractors = tmp_path / "extractors"
    extractors.mkdir()
    args = ["library", "build", "--data", str(small_synthetic_corpus)]
    args += ["--extractors", str(extractors), "--out", str(folder)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "choose another --out" in " ".join(result.output.split())
    assert _files(folder) == before
    _no_temp_folders(tmp_path)
    a_file = tmp_path / "library.txt"
    a_file.write_text("mine")
    with pytest.raises(InputError, match="is a file"):
        build_library(config, small_synthetic_corpus, a_file, vectors=vectors)
    assert a_file.read_text() == "mine"


def test_library_write_fills_an_empty_folder_and_replaces_its_own(tmp_path, vectors):
    from dubops.feature_store.build import write_library

    lib = load_config("tiny").library
    out = tmp_path / "library"
    out.mkdir()
    # online=False: the Parquet files and library.json only (no Feast apply), the same check.
    write_library(out, vectors, "first", lib, online=False)
    (out / "stray.txt").write_text("left by hand")
    write_library(out, vectors, "second", lib, online=False)  # its own library: replaced
    assert json.loads((out / "library.json").read_text())["version"] == "second"
    assert not (out / "stray.txt").exists()
    _no_temp_folders(tmp_path)


def test_bundle_assembly_refuses_a_users_folder_before_reading_anything(tmp_path):
    from dubops.registry.bundle import BUNDLE_FILE, assemble_bundle, check_replaceable

    folder = _users_folder(tmp_path)
    before = _files(folder)
    nowhere = tmp_path / "no_stage"  # refused before any part is looked at
    with pytest.raises(InputError, match=r"out_dir .*my_work.*no bundle\.json") as caught:
        assemble_bundle(
            folder,
            reasoner_dir=nowhere,
            speech_dir=nowhere,
            extractors_dir=nowhere,
            library_dir=nowhere,
        )
    assert "choose another out_dir, or delete the folder yourself" in str(caught.value)
    assert _files(folder) == before
    _no_temp_folders(tmp_path)
    # What counts as its own: a bundle.json naming a format and a hash (or nothing at all).
    own = tmp_path / "old_bundle"
    (own / "speech").mkdir(parents=True)
    (own / BUNDLE_FILE).write_text(json.dumps({"format": 1, "bundle_hash": "0" * 16}))
    check_replaceable(own)
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty")
    check_replaceable(tmp_path / "not_yet")
    (own / BUNDLE_FILE).write_text('{"just": "some json"}')
    with pytest.raises(InputError, match=r"no bundle\.json"):
        check_replaceable(own)


@pytest.fixture(scope="module")
def stages(small_synthetic_corpus, tmp_path_factory):
    """The micro stage folders: built once per session, shared with test_registry/test_dub_clip."""
    return build_stages(small_synthetic_corpus, tmp_path_factory.mktemp("stages"))


@pytest.mark.slow
def test_bundle_assembly_fills_an_empty_folder_and_replaces_its_own(stages, tmp_path):
    from dubops.registry.bundle import assemble_bundle, read_bundle

    out = tmp_path / "bundle"
    out.mkdir()
    parts = {
        "reasoner_dir": stages.reasoner,
        "speech_dir": stages.controlnet,
        "extractors_dir": stages.extractors,
        "library_dir": stages.library,
        "data_dir": stages.corpus,
    }
    assemble_bundle(out, **parts)
    (out / "speech" / "stray.txt").write_text("left by hand")
    assemble_bundle(out, **parts)  # its own bundle: replaced whole
    assert not (out / "speech" / "stray.txt").exists()
    assert read_bundle(out).bundle_hash
    _no_temp_folders(tmp_path)
