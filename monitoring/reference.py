"""A model version's drift reference: what its inputs looked like when it was evaluated.

The evaluate step builds it from the served path's own records of held-out
clips (:meth:`DubbingPipeline.describe`: the reasoner's conclusions, the
extractors' vectors, the media's shape and level) and the register step puts it
in the bundle, so every registered version carries the reference it was gated
on. It keeps each categorical feature's counts, each scalar's sorted values and,
per embedding modality, a principal-axes projection and the projected vectors.

**What counts as drift** is calibrated, not guessed: for a window of
``window`` clips, the reference is split at random ``draws`` times into a
window-sized part and the rest, and each feature's threshold is the
``1 - alpha / features`` quantile of its statistic over those splits
(Bonferroni: the chance that a window of the reference's own distribution
raises any feature is at most ``alpha``). The splits compare ``window`` clips
with ``clips - window``, a little noisier than a served window against all
``clips``, so the thresholds err towards quiet. A feature constant in the
reference (the frame rate) would get a zero threshold; a floor per method
keeps one odd clip from flagging it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dubops.errors import InputError
from dubops.monitoring import drift
from dubops.monitoring.features import (
    CATEGORICAL,
    EMBEDDING,
    SCALAR,
    embedding_rows,
    json_ready,
)

FORMAT = 1
FILE_NAME = "drift_reference.json"
# Threshold floors: a window must differ in more than this before a feature
# constant in the reference counts as drifted (KS: share of the window, and at least
# one and a half clips of it; PSI: a few categories' worth; MMD: a small fraction of
# the kernel's range).
FLOORS = {drift.KS: 0.15, drift.PSI: 0.05, drift.MMD: 1e-3}


@dataclass
class EmbeddingReference:
    """One modality's reference vectors, projected on their principal axes."""

    mean: list[float]
    components: list[list[float]]  # (dims, vector size)
    projected: list[list[float]]  # (clips, dims)
    bandwidth: float

    def project(self, vectors: np.ndarray) -> np.ndarray:
        return (np.asarray(vectors, dtype=np.float64) - np.asarray(self.mean)) @ np.asarray(
            self.components
        ).T


@dataclass
class Threshold:
    method: str
    threshold: float


@dataclass
class ReferenceProfile:
    """See the module docstring; :meth:`compare` scores a window against it."""

    clips: int
    window: int
    alpha: float
    categorical: dict[str, dict[str, int]]
    scalar: dict[str, list[float]]
    embedding: dict[str, EmbeddingReference]
    thresholds: dict[str, Threshold]
    created_at: str = ""
    model_version: str = ""
    splits: list[str] = field(default_factory=list)
    # The reference clips' feature records themselves (NaN as None): the batch report
    # compares them row-wise with the request log (Evidently wants two tables).
    records: list[dict[str, Any]] = field(default_factory=list)

    # -- scoring ---------------------------------------------------------------------

    def compare(
        self, features: Sequence[dict[str, Any]], vectors: Sequence[dict[str, Any]] = ()
    ) -> dict[str, dict[str, Any]]:
        """Each feature's ``{method, statistic, threshold, score}`` for one window
        (``score`` = statistic / threshold: above 1 is drift). Features the window
        has no values for are left out."""
        out: dict[str, dict[str, Any]] = {}
        for name, stat in self._statistics(features, vectors).items():
            if not np.isfinite(stat) or name not in self.thresholds:
                continue
            rule = self.thresholds[name]
            out[name] = {
                "method": rule.method,
                "statistic": round(stat, 6),
                "threshold": round(rule.threshold, 6),
                "score": round(stat / rule.threshold, 4),
            }
        return out

    def _statistics(
        self, features: Sequence[dict[str, Any]], vectors: Sequence[dict[str, Any]]
    ) -> dict[str, float]:
        stats: dict[str, float] = {}
        for name, counts in self.categorical.items():
            values = [str(f[name]) for f in features if name in f]
            if values:
                stats[name] = drift.psi(counts, values)
        for name, values in self.scalar.items():
            window = np.array([_number(f.get(name)) for f in features], dtype=np.float64)
            stats[name] = drift.ks(np.asarray(values), window)
        for modality, ref in self.embedding.items():
            rows = embedding_rows(list(vectors), modality)
            if rows is not None:
                stats[f"embedding_{modality}"] = drift.mmd(
                    np.asarray(ref.projected), ref.project(rows), ref.bandwidth
                )
        return stats

    # -- files -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    def save(self, path: str | Path) -> Path:
        from dubops.fileio import write_json

        write_json(Path(path), self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        """Read a reference; an :class:`InputError` naming the file when it is not one."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"drift reference {path}: unreadable ({exc})") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise InputError(
                f"drift reference {path}: not a format-{FORMAT} reference; rebuild it with "
                "`dubops monitor reference` or re-run the pipeline's evaluate step"
            )
        raw.pop("format")
        raw["embedding"] = {k: EmbeddingReference(**v) for k, v in raw["embedding"].items()}
        raw["thresholds"] = {k: Threshold(**v) for k, v in raw["thresholds"].items()}
        return cls(**raw)


def build_reference(
    features: Sequence[dict[str, Any]],
    vectors: Sequence[dict[str, Any]],
    window: int,
    alpha: float = 0.05,
    draws: int = 2000,
    embedding_dims: int = 8,
    seed: int = 0,
) -> ReferenceProfile:
    """A reference from the served path's records of held-out clips (see the module).

    Raises:
        InputError: fewer than ``2 * window`` clips (too few to calibrate a window).
    """
    clips = len(features)
    if window < 2 or clips < 2 * window:
        raise InputError(
            f"monitoring.window: {window} needs at least {2 * window} reference clips, got "
            f"{clips}; lower monitoring.window, or give more clips (monitoring.reference_splits, "
            "monitoring.reference_max_clips)"
        )
    categorical = {
        name: _counts([str(f.get(name, "none")) for f in features]) for name in CATEGORICAL
    }
    scalar = {}
    for name in SCALAR:
        values = np.array([_number(f.get(name)) for f in features], dtype=np.float64)
        values = np.sort(values[np.isfinite(values)])
        if len(values) >= 2 * window:
            scalar[name] = [round(float(v), 6) for v in values]
    embedding = {}
    for modality in EMBEDDING:
        rows = embedding_rows(list(vectors), modality)
        if rows is not None and len(rows) == clips:
            embedding[modality] = _fit_embedding(rows, embedding_dims)
    profile = ReferenceProfile(
        clips=clips,
        window=window,
        alpha=alpha,
        categorical=categorical,
        scalar=scalar,
        embedding=embedding,
        thresholds={},
        created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        records=[json_ready(f) for f in features],
    )
    profile.thresholds = _calibrate(profile, features, draws, seed)
    return profile


def _calibrate(
    profile: ReferenceProfile, features: Sequence[dict[str, Any]], draws: int, seed: int
) -> dict[str, Threshold]:
    """Thresholds from window-vs-rest splits of the reference (module docstring)."""
    rng = np.random.default_rng(seed)
    n, clips = profile.window, profile.clips
    splits = [rng.permutation(clips) for _ in range(draws)]
    null: dict[str, tuple[str, list[float]]] = {}
    for name in profile.categorical:
        values = np.array([str(f.get(name, "none")) for f in features], dtype=object)
        null[name] = (
            drift.PSI,
            [drift.psi(_counts(values[s[n:]].tolist()), values[s[:n]].tolist()) for s in splits],
        )
    for name in profile.scalar:
        values = np.array([_number(f.get(name)) for f in features], dtype=np.float64)
        null[name] = (
            drift.KS,
            [drift.ks(np.sort(values[s[n:]]), values[s[:n]]) for s in splits],
        )
    for modality, ref in profile.embedding.items():
        points = np.asarray(ref.projected)
        kernel = drift.gaussian_kernel(points, points, ref.bandwidth)
        stats = []
        for s in splits:
            win, rest = s[:n], s[n:]
            stats.append(
                drift.mmd_from_kernel(
                    kernel[np.ix_(rest, rest)].mean(),
                    kernel[np.ix_(win, win)].mean(),
                    kernel[np.ix_(rest, win)].mean(),
                )
            )
        null[f"embedding_{modality}"] = (drift.MMD, stats)
    level = 1 - profile.alpha / max(len(null), 1)
    out = {}
    for name, (method, stats) in null.items():
        finite = np.asarray([s for s in stats if np.isfinite(s)])
        value = float(np.quantile(finite, level)) if len(finite) else 0.0
        out[name] = Threshold(method, round(max(value, _floor(method, n)), 6))
    return out


def _floor(method: str, window: int) -> float:
    """The least threshold: a KS gap of one clip in a small window (1 / window) is one odd
    clip, not drift, so the floor is at least one and a half clips' worth."""
    return max(FLOORS[method], 1.5 / window) if method == drift.KS else FLOORS[method]


def _fit_embedding(rows: np.ndarray, dims: int) -> EmbeddingReference:
    """Principal axes of the reference vectors (at most ``dims``, fewer than clips)."""
    mean = rows.mean(0)
    centred = rows - mean
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[: max(1, min(dims, len(rows) - 1, rows.shape[1]))]
    projected = centred @ components.T
    return EmbeddingReference(
        mean=np.round(mean, 6).tolist(),
        components=np.round(components, 6).tolist(),
        projected=np.round(projected, 6).tolist(),
        bandwidth=drift.median_distance(projected),
    )


def _counts(values: Sequence[str]) -> dict[str, int]:
    keys, counts = np.unique(np.asarray(values, dtype=object).astype(str), return_counts=True)
    return {str(k): int(c) for k, c in zip(keys, counts, strict=True)}


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
