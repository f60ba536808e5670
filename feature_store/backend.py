"""The interface the three search backends share, and the filter pieces they reuse.

A backend answers one question: for each query vector of one modality, the top-K
footage clips that pass that query's filter (clip and speaker exclusions, or a
speaker restriction), best first. :class:`dubops.feature_store.retrieval.FootageLibrary`
adds the matched audio and packs the answer, so the backends stay interchangeable
and a test can check that they agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class QueryFilter:
    """Which footage one query may retrieve."""

    exclude_clips: frozenset[str] = frozenset()
    exclude_speakers: frozenset[str] = frozenset()
    speakers: frozenset[str] | None = None  # None: speaker-agnostic; a set: only these

    @property
    def empty(self) -> bool:
        """True when nothing is eligible (speaker-specific for a speaker without footage)."""
        return self.speakers is not None and not (self.speakers - self.exclude_speakers)

    def allows(self, clip_id: str, speaker: str) -> bool:
        if clip_id in self.exclude_clips or speaker in self.exclude_speakers:
            return False
        return self.speakers is None or speaker in self.speakers


@dataclass
class RawHits:
    """One query's hits without audio vectors (the library looks those up by clip id)."""

    clip_ids: list[str]
    similarities: np.ndarray  # (k,)
    speakers: list[str]
    emotions: list[str]
    audio_paths: list[str]

    @classmethod
    def empty(cls) -> RawHits:
        return cls([], np.zeros(0, dtype=np.float32), [], [], [])


class SearchBackend(Protocol):
    """What :class:`FootageLibrary` needs from a backend."""

    name: str

    def search(
        self, modality: str, queries: np.ndarray, k: int, filters: list[QueryFilter]
    ) -> list[RawHits]:
        """Top-``k`` per row of ``queries`` (b, d) under ``filters[i]``, best first."""
        ...

    def audio_vectors(self, clip_ids: list[str]) -> np.ndarray:
        """The stored audio vectors (n, d) of footage clips, in the order asked."""
        ...

    def close(self) -> None: ...


def _quote(value: str) -> str:
    """A Milvus string literal (backslashes first, then quotes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def milvus_expression(
    speakers: frozenset[str] | None,
    exclude_speakers: frozenset[str],
    exclude_clips: frozenset[str] = frozenset(),
) -> str | None:
    """A Milvus boolean expression for a filter; None when nothing is filtered."""
    parts = []
    if speakers is not None:
        parts.append(f"speaker in [{', '.join(_quote(s) for s in sorted(speakers))}]")
    if exclude_speakers:
        parts.append(f"speaker not in [{', '.join(_quote(s) for s in sorted(exclude_speakers))}]")
    if exclude_clips:
        parts.append(f"footage_id not in [{', '.join(_quote(c) for c in sorted(exclude_clips))}]")
    return " and ".join(f"({p})" for p in parts) if parts else None


# Similarities equal to this many decimals are ties, broken by clip id. Backends
# differ by ~1e-7 (float32 sums in another order), and real footage has exact
# duplicates (e.g. every clip without a visible face gets the same face vector), so
# without a shared rule each backend would pick a different member of a tie group.
TIE_DECIMALS = 5
# Milvus's largest search limit (topk); tie groups are widened up to it.
MAX_LIMIT = 16384
# Searches fetch this many hits beyond k: when the first of them ranks strictly
# below the k-th, no unseen clip can tie with the k-th and one search suffices.
TIE_MARGIN = 1


def top_k_sorted(ids: list[str], sims: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` best hits: similarity (to ``TIE_DECIMALS``) descending, then clip id."""
    rounded = np.round(np.asarray(sims, dtype=np.float64), TIE_DECIMALS)
    order = sorted(range(len(ids)), key=lambda i: (-rounded[i], ids[i]))
    return order[:k]


def tie_group_cut(fetched: np.ndarray, kept: np.ndarray, k: int, limit: int) -> bool:
    """True when a search capped at ``limit`` hits may have cut a tie group (fetch more).

    Searches ask for ``k + TIE_MARGIN`` (plus any over-fetch): if the weakest hit
    fetched still ties with the k-th kept one, clips beyond the limit may tie too.

    Args:
        fetched: similarities of every hit the search returned (before post-filtering).
        kept: similarities of the eligible hits, best first after :func:`top_k_sorted`.
        k: hits wanted.
        limit: the search's limit.
    """
    if len(fetched) < limit:
        return False  # the search returned everything eligible
    if len(kept) < k:
        return True  # post-filtering ate into the k: look further
    weakest = np.round(float(np.min(fetched)), TIE_DECIMALS)
    return weakest >= np.round(float(kept[k - 1]), TIE_DECIMALS)
