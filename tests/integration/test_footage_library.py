"""The footage library end to end: a real Feast apply + materialise into real Milvus Lite.

Vectors are injected (label-clustered random vectors over the small synthetic
corpus), so these tests do not depend on trained extractors.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dubops.config import load_config
from dubops.feature_store.build import build_library
from dubops.feature_store.layout import LibraryError
from dubops.feature_store.retrieval import FootageLibrary
from dubops.feature_store.synthetic import clustered_vectors

BACKENDS = ("numpy", "milvus", "feast")


@pytest.fixture(scope="module")
def config():
    return load_config("tiny")


@pytest.fixture(scope="module")
def vectors(small_synthetic_corpus) -> pd.DataFrame:
    manifest = pd.read_parquet(small_synthetic_corpus / "manifest.parquet")
    frame = clustered_vectors(manifest, seed=3)
    # Real footage has exact duplicates (every clip without a visible face gets the same
    # face vector): a tie group larger than k that every backend must cut the same way.
    duplicates = frame.index[frame["split"] == "train"][-8:]
    shared = frame.loc[duplicates[0], "face"]
    frame["face"] = [shared if i in set(duplicates) else v for i, v in frame["face"].items()]
    return frame


@pytest.fixture(scope="module")
def library(tmp_path_factory, config, small_synthetic_corpus, vectors):
    out = tmp_path_factory.mktemp("footage") / "library"
    report = build_library(config, small_synthetic_corpus, out, vectors=vectors)
    assert report.built and report.footage == int((vectors["split"] == "train").sum())
    return out


@pytest.fixture(scope="module")
def opened(library):
    libs = {name: FootageLibrary.open(library, name) for name in BACKENDS}
    yield libs
    for lib in libs.values():
        lib.close()


def _queries(vectors: pd.DataFrame, ids: list[str]) -> dict[str, np.ndarray]:
    rows = vectors.set_index("clip_id").loc[ids]
    return {m: np.stack(rows[m].to_numpy()) for m in ("scene", "face", "text")}


def _cases(vectors: pd.DataFrame):
    """Queries with every kind of filter: none, own clip, speakers out, speaker-specific."""
    train = vectors[vectors["split"] == "train"]
    test = vectors[vectors["split"].str.startswith("test")]
    # The last query's face vector is the duplicated one (8 exact ties, k=4).
    ids = list(test["clip_id"][:3]) + list(train["clip_id"][:3]) + [train["clip_id"].iloc[-1]]
    spk = list(train["speaker"][:4])
    exclude_clips = [(), (), (), [ids[3]], [ids[4], ids[5]], [ids[5]], []]
    exclude_speakers = [(), [spk[0]], (), (), (), [spk[1]], ()]
    speakers = [None, None, {spk[0], spk[1]}, None, {spk[1]}, None, {"nobody"}]
    return ids, exclude_clips, exclude_speakers, speakers


def test_backends_agree_on_top_k(opened, vectors):
    ids, exclude_clips, exclude_speakers, speakers = _cases(vectors)
    q = _queries(vectors, ids)
    results = {
        name: lib.query_batch(
            q["scene"],
            q["face"],
            q["text"],
            k=4,
            exclude_clips=exclude_clips,
            exclude_speakers=exclude_speakers,
            speakers=speakers,
        )
        for name, lib in opened.items()
    }
    reference = results["numpy"]
    labels = vectors.set_index("clip_id")
    for name in ("milvus", "feast"):
        for i, (ref, got) in enumerate(zip(reference, results[name], strict=True)):
            for m in ("scene", "face", "text"):
                a, b = ref.modalities[m], got.modalities[m]
                assert a.clip_ids == b.clip_ids, (name, i, m)
                np.testing.assert_allclose(a.similarities, b.similarities, atol=1e-5)
                assert a.emotions == b.emotions and a.speakers == b.speakers
                assert a.audio_paths == b.audio_paths
                np.testing.assert_allclose(a.audio_vectors, b.audio_vectors, atol=1e-6)
    # The filters did what they say, and k hits came back whenever k were eligible.
    for i, result in enumerate(reference):
        for m, hits in result.modalities.items():
            assert not set(hits.clip_ids) & set(exclude_clips[i]), (i, m)
            assert not set(hits.speakers) & set(exclude_speakers[i]), (i, m)
            if speakers[i] is not None:
                assert set(hits.speakers) <= speakers[i]
            eligible = [
                c
                for c, s in zip(labels.index, labels["speaker"], strict=True)
                if labels.loc[c, "split"] == "train"
                and c not in exclude_clips[i]
                and s not in exclude_speakers[i]
                and (speakers[i] is None or s in speakers[i])
            ]
            assert len(hits) == min(4, len(eligible)), (i, m)


def test_query_clip_never_retrieves_itself(opened, vectors):
    train_ids = list(vectors.loc[vectors["split"] == "train", "clip_id"][:6])
    q = _queries(vectors, train_ids)
    for name, lib in opened.items():
        kept = lib.query_batch(q["scene"], q["face"], q["text"], k=3)
        excluded = lib.query_batch(
            q["scene"], q["face"], q["text"], k=3, exclude_clips=[[c] for c in train_ids]
        )
        for clip, with_self, without in zip(train_ids, kept, excluded, strict=True):
            for m in ("scene", "face", "text"):
                # Without the exclusion the clip finds itself first (similarity 1) ...
                assert with_self.modalities[m].clip_ids[0] == clip, (name, m)
                # ... with it, never, and still k hits.
                assert clip not in without.modalities[m].clip_ids, (name, m)
                assert len(without.modalities[m]) == 3


def test_feast_path_returns_each_id_with_its_own_features(opened, vectors, library):
    clips = pd.read_parquet(library / "clips.parquet").set_index("clip_id")
    test_ids = list(vectors.loc[vectors["split"] != "train", "clip_id"][:8])
    q = _queries(vectors, test_ids)
    results = opened["feast"].query_batch(q["scene"], q["face"], q["text"], k=5)
    for i, result in enumerate(results):
        for m, hits in result.modalities.items():
            for j, clip in enumerate(hits.clip_ids):
                row = clips.loc[clip]
                assert hits.emotions[j] == row["emotion"]
                assert hits.speakers[j] == row["speaker"]
                assert hits.audio_paths[j] == row["audio_path"]
                np.testing.assert_allclose(hits.audio_vectors[j], row["audio_vector"], atol=1e-6)
                # The similarity belongs to this id's stored vector, not a neighbour's.
                expected = float(np.dot(q[m][i], np.asarray(row[f"{m}_vector"])))
                assert abs(hits.similarities[j] - expected) < 1e-5
            assert list(hits.similarities) == sorted(hits.similarities, reverse=True)


def test_clip_vectors_cover_every_split(opened, vectors):
    lib = opened["numpy"]
    ids = list(vectors.groupby("split")["clip_id"].first())
    got = lib.clip_vectors(ids)
    expected = vectors.set_index("clip_id").loc[ids]
    for m in ("scene", "face", "text", "audio"):
        np.testing.assert_allclose(got[m], np.stack(expected[m].to_numpy()), atol=1e-7)
    assert lib.info.size == int((vectors["split"] == "train").sum())
    assert lib.info.splits == ["train"]
    with pytest.raises(ValueError, match="not in the library"):
        lib.clip_vectors(["no_such_clip"])


def test_rebuild_is_a_no_op_and_a_new_version_rebuilds(
    tmp_path, config, small_synthetic_corpus, vectors
):
    out = tmp_path / "lib"
    first = build_library(
        config, small_synthetic_corpus, out, vectors=vectors, versions={"scene": "1"}
    )
    stamp = (out / "library.json").stat().st_mtime_ns
    again = build_library(
        config, small_synthetic_corpus, out, vectors=vectors, versions={"scene": "1"}
    )
    assert first.built and not again.built and again.version == first.version
    assert (out / "library.json").stat().st_mtime_ns == stamp
    newer = build_library(
        config, small_synthetic_corpus, out, vectors=vectors, versions={"scene": "2"}
    )
    assert newer.built and newer.version != first.version
    assert json.loads((out / "library.json").read_text())["extractor_versions"] == {"scene": "2"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_failed_build_leaves_the_old_library(
    tmp_path, config, small_synthetic_corpus, vectors, monkeypatch
):
    out = tmp_path / "lib"
    build_library(config, small_synthetic_corpus, out, vectors=vectors, versions={"v": "1"})
    import dubops.feature_store.build as build_module

    def broken(*args, **kwargs):
        raise RuntimeError("materialisation failed")

    monkeypatch.setattr(build_module, "apply_and_materialise", broken)
    with pytest.raises(RuntimeError):
        build_library(config, small_synthetic_corpus, out, vectors=vectors, versions={"v": "2"})
    assert json.loads((out / "library.json").read_text())["extractor_versions"] == {"v": "1"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    FootageLibrary.open(out, "numpy").close()


def _extractor_files(folder: Path) -> Path:
    """A folder in the trained-extractors layout: what the version check reads."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("scene", "face", "text", "audio"):
        (folder / f"{name}.safetensors").write_bytes(name.encode() * 8)
        (folder / f"{name}.json").write_text(json.dumps({"settings": {"dim": 8}}))
    return folder


def test_missing_or_stale_store_names_the_build_command(
    tmp_path, config, small_synthetic_corpus, vectors, library
):
    with pytest.raises(LibraryError, match="dubops library build"):
        FootageLibrary.open(tmp_path / "absent", "numpy")
    copy = tmp_path / "copy"
    shutil.copytree(library, copy)
    shutil.rmtree(copy / "feature_repo" / "data" / "online_store.db")
    for backend in ("milvus", "feast"):
        with pytest.raises(LibraryError, match="dubops library build"):
            FootageLibrary.open(copy, backend)
    (copy / "library.json").unlink()
    with pytest.raises(LibraryError, match="dubops library build"):
        FootageLibrary.open(copy, "numpy")
    # Built from these extractors: fresh; one retrained since: stale.
    from dubops.emotion.footage_vectors import extractor_versions

    extractors = _extractor_files(tmp_path / "extractors")
    fresh = tmp_path / "fresh"
    versions = extractor_versions(extractors)
    build_library(config, small_synthetic_corpus, fresh, vectors=vectors, versions=versions)
    FootageLibrary.open(fresh, "numpy", extractors_dir=extractors).close()
    (extractors / "audio.safetensors").write_bytes(b"retrained")
    with pytest.raises(LibraryError, match=r"stale.*dubops library build"):
        FootageLibrary.open(fresh, "numpy", extractors_dir=extractors)


def test_precision_beats_shuffled_labels(opened):
    from dubops.feature_store.precision import evaluate_precision

    lib = opened["milvus"]
    real = evaluate_precision(lib, ks=(1, 3))
    shuffled = evaluate_precision(lib, ks=(1, 3), permute_labels_seed=0)
    for frame in (real, shuffled):
        specific_s2 = frame[(frame.setting == "specific") & (frame.split == "test_s2")]
        assert (specific_s2["queries"] == 0).all() and (specific_s2["no_footage"] > 0).all()
    pick = (real.setting == "agnostic") & (real.split == "all") & (real.k == 3)
    for modality in ("scene", "face", "text", "fused"):
        row = pick & (real.modality == modality)
        assert real.loc[row, "precision"].item() > shuffled.loc[row, "precision"].item() + 0.2
        assert real.loc[row, "precision"].item() > real.loc[row, "chance"].item() + 0.2


def test_cli_query_and_evaluate(library, vectors, small_synthetic_corpus):
    from typer.testing import CliRunner

    from dubops.cli.main import app

    runner = CliRunner()
    clip = vectors.loc[vectors["split"] == "train", "clip_id"].iloc[0]
    result = runner.invoke(
        app, ["library", "query", "--clip", clip, "--library", str(library), "--k", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["query"]["clip_id"] == clip
    for m in ("scene", "face", "text"):
        assert len(data["hits"][m]["clip_ids"]) == 2 and clip not in data["hits"][m]["clip_ids"]
    result = runner.invoke(
        app,
        [
            *("library", "evaluate", "--library", str(library)),
            *("--data", str(small_synthetic_corpus), "--max-k", "3", "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = pd.DataFrame(json.loads(result.stdout)["rows"])
    assert set(rows["k"]) == {1, 2, 3} and set(rows["modality"]) == {
        "scene",
        "face",
        "text",
        "fused",
    }
    missing = runner.invoke(app, ["library", "query", "--clip", clip, "--library", "/nonexistent"])
    assert missing.exit_code == 2 and "dubops library build" in missing.output


@pytest.mark.slow
def test_workers_share_the_store_through_milvus_lite_server(
    tmp_path, config, small_synthetic_corpus, vectors
):
    """One `milvus-lite server` process owns the store; every worker connects by URI."""
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    from pymilvus import MilvusClient

    out = tmp_path / "lib"
    build_library(config, small_synthetic_corpus, out, vectors=vectors)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = out / "feature_repo" / "data" / "online_store.db"
    cli = Path(sys.executable).parent / "milvus-lite"
    server = subprocess.Popen(
        [str(cli), "server", "--data-dir", str(store), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                MilvusClient(uri).close()
                break
            except Exception:
                if time.time() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        # While the server holds the store, opening the folder in-process is refused.
        with pytest.raises(Exception, match="Open local milvus failed"):
            MilvusClient(str(store))
        ids = list(vectors.loc[vectors["split"] == "test_s1", "clip_id"][:3])
        q = _queries(vectors, ids)
        with FootageLibrary.open(out, "numpy") as reference:
            expected = reference.query_batch(q["scene"], q["face"], q["text"])
        for backend in ("milvus", "feast"):
            with FootageLibrary.open(out, backend, milvus_uri=uri) as lib:
                got = lib.query_batch(q["scene"], q["face"], q["text"])
            for a, b in zip(expected, got, strict=True):
                assert a.modalities["text"].clip_ids == b.modalities["text"].clip_ids
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_one_milvus_search_per_modality_without_ties(opened, vectors, monkeypatch):
    """The tie check must not turn every query into two searches (latency)."""
    backend = opened["milvus"].backend
    calls: list[str] = []
    real = backend._search

    def counting(modality, *args, **kwargs):
        calls.append(modality)
        return real(modality, *args, **kwargs)

    monkeypatch.setattr(backend, "_search", counting)
    ids = list(vectors.loc[vectors["split"] != "train", "clip_id"][:5])
    q = _queries(vectors, ids)
    opened["milvus"].query_batch(q["scene"], q["face"], q["text"], k=3)
    assert calls.count("scene") == 1 and calls.count("text") == 1
