"""Which clips the report measures, and their speech loaded once for every part.

Each measurement reads the same waves (16 kHz: Resemblyzer and PocketSphinx
want it, and pitch tracking is cheaper there), so they are decoded and
resampled once here rather than once per part.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from dubops.sample_rates import ANALYSIS_SAMPLE_RATE

if TYPE_CHECKING:
    import pandas as pd

    from dubops.data.layout import CorpusLayout

Progress = Callable[[str, int, int], None]

HELD_OUT_SPLITS: tuple[str, ...] = ("val", "test_s1", "test_s2")
# The rate every part works at (Resemblyzer's and PocketSphinx's models are 16 kHz).
REPORT_SAMPLE_RATE = ANALYSIS_SAMPLE_RATE


def clip_hash(clip_id: str) -> int:
    """A stable pseudo-random number per clip (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.sha1(clip_id.encode()).digest()[:8], "big")


def is_held_out(split: str) -> bool:
    return split in HELD_OUT_SPLITS


def select_clips(manifest: pd.DataFrame, max_clips: int) -> pd.DataFrame:
    """At most ``max_clips`` rows: held-out clips first, up to half, then train.

    Held-out clips come first because they are what the figures are about, but
    no more than half of the budget goes to them so the trained parts (emotion,
    scene) keep a training set on a large corpus. Within each group the order
    is by :func:`clip_hash`, so the subset is deterministic and unbiased by id.
    """
    import pandas as pd

    order = manifest.assign(_h=manifest["clip_id"].map(clip_hash)).sort_values("_h")
    held = order[order["split"].map(is_held_out)]
    train = order[~order["split"].map(is_held_out)]
    n_held = min(len(held), max(max_clips // 2, max_clips - len(train)))
    n_train = min(len(train), max_clips - n_held)
    chosen = pd.concat([held.iloc[:n_held], train.iloc[:n_train]], ignore_index=True)
    return chosen.drop(columns="_h")


def load_waves(
    layout: CorpusLayout, clips: pd.DataFrame, progress: Progress | None = None
) -> dict[str, np.ndarray]:
    """Target speech of every clip, mono float32 at :data:`REPORT_SAMPLE_RATE`."""
    from dubops.audio import read_wav

    waves: dict[str, np.ndarray] = {}
    for i, row in enumerate(clips.itertuples(index=False)):
        waves[row.clip_id], _ = read_wav(layout.resolve(row.audio_path), REPORT_SAMPLE_RATE)
        if progress is not None:
            progress("load audio", i + 1, len(clips))
    return waves
