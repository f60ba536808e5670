"""Retrieval precision@K: how often a retrieved clip shares the query's emotion label.

Queries are the query splits (test_s1 + test_s2 by default) against the footage
(train). Rows per setting (speaker-agnostic, speaker-specific), split (each query
split and "all"), modality and K = 1..5:

* ``scene``/``face``/``text``: each modality's own top-K, through the library's
  search backend (the serving path);
* ``fused``: the top-K clips by the *mean* of the three modalities' cosine
  similarities (late fusion over the whole footage, computed exactly here), a
  single ranking that uses every basic emotion at once.

precision@K of a query is the share of its retrieved clips (K, or fewer when
fewer are eligible) with the query's emotion; a row averages over its queries.
``chance`` is the expected precision of a random pick from the same eligible
footage. Speaker-specific queries whose speaker has no footage (every test_s2
query: V2C setting 2 has unseen speakers) cannot retrieve anything: they are left
out of that setting and counted in ``no_footage``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from dubops.feature_store.layout import QUERY_MODALITIES

if TYPE_CHECKING:
    import pandas as pd

    from dubops.feature_store.retrieval import FootageLibrary

logger = logging.getLogger(__name__)

SETTINGS = ("agnostic", "specific")


def evaluate_precision(
    library: FootageLibrary,
    ks: Sequence[int] = (1, 2, 3, 4, 5),
    query_splits: Sequence[str] = ("test_s1", "test_s2"),
    permute_labels_seed: int | None = None,
    batch_size: int = 64,
) -> pd.DataFrame:
    """Precision@K per setting, split, modality (and fused) and K.

    Args:
        library: an opened library (any backend).
        ks: the K values; the search runs once at ``max(ks)`` (top-K lists are prefixes).
        query_splits: splits whose clips query the footage.
        permute_labels_seed: shuffle the query emotion labels (a control: precision
            should fall to chance).
        batch_size: queries per ``query_batch`` call.

    Returns:
        Columns setting, split, modality, k, precision, chance, queries, no_footage.
    """
    import pandas as pd

    labels = [r for r in library.clip_labels() if r["split"] in set(query_splits)]
    if not labels:
        raise ValueError(f"the library's corpus has no clips in query splits {list(query_splits)}")
    footage = [r for r in library.clip_labels() if r["split"] in set(library.info.splits)]
    ids = [r["clip_id"] for r in labels]
    emotions = np.array([r["emotion"] for r in labels])
    if permute_labels_seed is not None:
        emotions = np.random.default_rng(permute_labels_seed).permutation(emotions)
    speakers = [r["speaker"] for r in labels]
    splits = np.array([r["split"] for r in labels])
    queries = library.clip_vectors(ids)
    foot_vectors = library.clip_vectors([r["clip_id"] for r in footage])
    foot_emotion = np.array([r["emotion"] for r in footage])
    foot_speaker = np.array([r["speaker"] for r in footage])
    kmax = max(ks)

    rows = []
    for setting in SETTINGS:
        has_footage = np.array([setting == "agnostic" or s in set(foot_speaker) for s in speakers])
        hits = _hit_emotions(library, queries, speakers, setting, kmax, batch_size, has_footage)
        hits["fused"] = _fused_hit_emotions(
            queries, foot_vectors, foot_emotion, foot_speaker, speakers, setting, kmax, has_footage
        )
        chance = np.array(
            [
                np.mean(foot_emotion[foot_speaker == s] == e)
                if setting == "specific" and ok
                else np.mean(foot_emotion == e)
                for s, e, ok in zip(speakers, emotions, has_footage, strict=True)
            ]
        )
        for split in [*query_splits, "all"]:
            in_split = (splits == split) if split != "all" else np.ones(len(ids), bool)
            chosen = np.flatnonzero(in_split & has_footage)
            for modality, per_query in hits.items():
                for k in ks:
                    scores = [np.mean(np.asarray(per_query[i][:k]) == emotions[i]) for i in chosen]
                    rows.append(
                        {
                            "setting": setting,
                            "split": split,
                            "modality": modality,
                            "k": k,
                            "precision": float(np.mean(scores)) if scores else float("nan"),
                            "chance": float(np.mean(chance[chosen]))
                            if len(chosen)
                            else float("nan"),
                            "queries": len(chosen),
                            "no_footage": int(np.sum(in_split & ~has_footage)),
                        }
                    )
    return pd.DataFrame(rows)


def _hit_emotions(library, queries, speakers, setting, kmax, batch_size, has_footage):
    """Per modality, per query: the emotion labels of its top-``kmax`` hits."""
    out: dict[str, list[list[str]]] = {m: [[] for _ in speakers] for m in QUERY_MODALITIES}
    todo = np.flatnonzero(has_footage)
    for start in range(0, len(todo), batch_size):
        rows = todo[start : start + batch_size]
        restrict = [{speakers[i]} if setting == "specific" else None for i in rows]
        results = library.query_batch(
            queries["scene"][rows],
            queries["face"][rows],
            queries["text"][rows],
            k=kmax,
            speakers=restrict,
        )
        for i, result in zip(rows, results, strict=True):
            for m in QUERY_MODALITIES:
                out[m][i] = result.modalities[m].emotions
    return out


def _fused_hit_emotions(
    queries, foot_vectors, foot_emotion, foot_speaker, speakers, setting, kmax, has_footage
):
    """Top-``kmax`` by the mean cosine over scene, face and text (exact, in memory)."""
    mean_sim = sum(queries[m] @ foot_vectors[m].T for m in QUERY_MODALITIES) / len(QUERY_MODALITIES)
    out: list[list[str]] = []
    for i, speaker in enumerate(speakers):
        if not has_footage[i]:
            out.append([])
            continue
        scores = mean_sim[i].copy()
        if setting == "specific":
            scores[foot_speaker != speaker] = -np.inf
        order = np.argsort(-scores, kind="stable")[:kmax]
        out.append([foot_emotion[j] for j in order if np.isfinite(scores[j])])
    return out


def precision_table(frame: pd.DataFrame, k: int | None = None) -> pd.DataFrame:
    """A compact pivot: rows (setting, split, modality), columns P@K."""
    data = frame if k is None else frame[frame["k"] == k]
    table = data.pivot_table(
        index=["setting", "split", "modality"], columns="k", values="precision", dropna=False
    )
    table.columns = [f"P@{c}" for c in table.columns]
    chance = data.groupby(["setting", "split", "modality"])["chance"].first()
    queries = data.groupby(["setting", "split", "modality"])["queries"].first()
    return table.assign(chance=chance, queries=queries).reset_index()
