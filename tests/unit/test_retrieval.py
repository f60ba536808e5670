"""Retrieval logic without Feast: the NumPy backend, filters, input checks, settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dubops.feature_store.backend import QueryFilter, milvus_expression
from dubops.feature_store.layout import LibraryLayout
from dubops.feature_store.numpy_backend import NumpyBackend
from dubops.feature_store.retrieval import FootageLibrary, LibraryInfo
from dubops.feature_store.settings import LibraryConfig

N, D = 200, 16


def _unit(rng, n):
    v = rng.standard_normal((n, D)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def library() -> FootageLibrary:
    rng = np.random.default_rng(0)
    ids = [f"c{i:03d}" for i in range(N)]
    speakers = [f"s{i % 7}" for i in range(N)]
    emotions = [f"e{i % 5}" for i in range(N)]
    vectors = {m: _unit(rng, N) for m in ("scene", "face", "text", "audio")}
    backend = NumpyBackend(ids, speakers, emotions, [f"a/{c}.wav" for c in ids], vectors)
    info = LibraryInfo(version="test", size=N, splits=["train"], clips=N, dim=D)
    return FootageLibrary(LibraryLayout(Path("/nonexistent")), info, backend)


def test_top_k_is_the_exact_cosine_ranking(library):
    rng = np.random.default_rng(1)
    q = _unit(rng, 5)
    results = library.query_batch(q, q, q, k=4)
    scores = q @ library.backend.vectors["face"].T
    for i, result in enumerate(results):
        hits = result.modalities["face"]
        expected = np.argsort(-scores[i])[:4]
        assert hits.clip_ids == [f"c{j:03d}" for j in expected]
        np.testing.assert_allclose(hits.similarities, scores[i, expected], atol=1e-6)
        rows = [library.backend.clip_ids.index(c) for c in hits.clip_ids]
        np.testing.assert_array_equal(hits.audio_vectors, library.backend.vectors["audio"][rows])


def test_filters_keep_k_hits_and_respect_every_rule(library):
    rng = np.random.default_rng(2)
    q = _unit(rng, 1)[0]
    best = library.query(q, q, q, k=10).modalities["scene"].clip_ids
    result = library.query(
        q, q, q, k=10, exclude_clips=best[:6], exclude_speakers={"s1"}, speakers={"s1", "s2", "s3"}
    )
    hits = result.modalities["scene"]
    assert len(hits) == 10
    assert not set(hits.clip_ids) & set(best[:6])
    assert set(hits.speakers) <= {"s2", "s3"}
    # Fewer eligible than k: all of them, no padding.
    only = library.query(q, q, q, k=50, speakers={"s0"}, exclude_speakers=set())
    assert len(only.modalities["text"]) == len([i for i in range(N) if i % 7 == 0])
    nobody = library.query(q, q, q, k=3, speakers={"unknown"})
    assert len(nobody.modalities["scene"]) == 0
    assert nobody.modalities["scene"].audio_vectors.shape == (0, D)


def test_exact_ties_are_broken_by_clip_id(library):
    duplicate = library.backend.vectors["scene"][150].copy()
    for i in (150, 20, 90, 199, 5):
        library.backend.vectors["scene"][i] = duplicate
    hits = library.query(duplicate, duplicate, duplicate, k=3).modalities["scene"]
    assert hits.clip_ids == ["c005", "c020", "c090"]
    more = library.query(duplicate, duplicate, duplicate, k=7).modalities["scene"]
    assert more.clip_ids[:5] == ["c005", "c020", "c090", "c150", "c199"]
    assert more.similarities[5] < 0.999


def test_a_search_is_widened_only_when_the_limit_cuts_a_tie_group():
    from dubops.feature_store.backend import tie_group_cut

    kept = np.array([0.9, 0.8, 0.7])
    assert not tie_group_cut(np.array([0.9, 0.8, 0.7, 0.6]), kept, k=3, limit=4)
    assert tie_group_cut(np.array([0.9, 0.8, 0.7, 0.7]), kept, k=3, limit=4)
    assert not tie_group_cut(np.array([0.9, 0.8, 0.7]), kept, k=3, limit=4)  # all fetched
    assert tie_group_cut(np.array([0.9, 0.8, 0.7, 0.6]), kept[:2], k=3, limit=4)  # filtered


def test_bad_inputs_name_the_field(library):
    q = np.zeros((2, D), np.float32)
    with pytest.raises(ValueError, match="text must have shape"):
        library.query_batch(q, q, np.zeros((2, D + 1)))
    with pytest.raises(ValueError, match="exclude_clips needs one entry per query"):
        library.query_batch(q, q, q, exclude_clips=[["c000"]])
    with pytest.raises(ValueError, match="collections of ids, not strings"):
        library.query(q[0], q[0], q[0], exclude_clips="c000")
    with pytest.raises(ValueError, match="k must be"):
        library.query(q[0], q[0], q[0], k=0)


def test_milvus_expressions_quote_and_combine():
    assert milvus_expression(None, frozenset()) is None
    expr = milvus_expression(frozenset({"o'brien"}), frozenset({"b"}), frozenset({"c1"}))
    assert expr == (
        "(speaker in ['o\\'brien']) and (speaker not in ['b']) and (footage_id not in ['c1'])"
    )
    assert QueryFilter(speakers=frozenset({"a"}), exclude_speakers=frozenset({"a"})).empty
    assert not QueryFilter().empty


def test_library_config_checks_splits():
    assert LibraryConfig().footage_splits == ["train"]
    with pytest.raises(ValueError, match="splits must be"):
        LibraryConfig(footage_splits=["training"])
    with pytest.raises(ValueError):
        LibraryConfig(unknown=1)
