"""Stand-in vectors frames for tests and benchmarks (no trained extractors needed).

``clustered_vectors`` puts each clip's vectors near a per-emotion centre plus
noise, so retrieval precision means something and can fail; ``random_footage``
gives the benchmark N random unit vectors per modality.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dubops.feature_store.layout import LABEL_COLUMNS, MODALITIES

if TYPE_CHECKING:
    import pandas as pd


def _unit(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def clustered_vectors(
    manifest: pd.DataFrame, dim: int = 256, noise: float = 1.5, seed: int = 0
) -> pd.DataFrame:
    """A vectors frame for a manifest: unit vectors near their emotion's centre.

    Args:
        manifest: rows with clip_id, split, speaker, emotion, audio_path.
        dim: vector size.
        noise: per-coordinate noise relative to the unit-variance centre (1.5 at
            256-d gives cosine ~0.3 within an emotion, ~0 across).
        seed: random seed.
    """
    rng = np.random.default_rng(seed)
    frame = manifest[list(LABEL_COLUMNS)].copy().reset_index(drop=True)
    emotions = sorted(frame["emotion"].unique())
    for modality in MODALITIES:
        centres = {e: rng.standard_normal(dim) for e in emotions}
        base = np.stack([centres[e] for e in frame["emotion"]])
        frame[modality] = list(_unit(base + noise * rng.standard_normal(base.shape)))
    return frame


def random_footage(n: int, dim: int = 256, speakers: int = 50, seed: int = 0) -> pd.DataFrame:
    """``n`` footage clips (split train) with random unit vectors and random labels."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "clip_id": [f"bench_{i:07d}" for i in range(n)],
            "split": "train",
            "speaker": [f"spk{j:03d}" for j in rng.integers(0, speakers, n)],
            "emotion": [f"emo{j}" for j in rng.integers(0, 7, n)],
        }
    )
    frame["audio_path"] = "audio/" + frame["clip_id"] + ".wav"
    for modality in MODALITIES:
        frame[modality] = list(_unit(rng.standard_normal((n, dim), dtype=np.float32)))
    return frame
