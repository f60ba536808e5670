"""The difference of two systems on the same clips, with the noise of clips and of takes.

Why: issue 23 compares systems that each come from a training run (and a
sampling seed). A standard error over clips alone says how much the figure
would move on other clips, not how much it would move with another training of
the same system; two trainings of one graph stage differed by 0.1 EMO-ACC on
119 clips, where the clip SE was 0.04. With several takes per system (the k-th
take of each system trained or sampled with the same seed), the take-to-take
spread of the difference is measured too, and the two are added: a
conservative total (the clip-by-take noise is counted in both), so a
difference read as ≥ 2 SE holds for both kinds of repetition.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class PairedDifference:
    """``a − b`` over shared clips.

    Attributes:
        diff: mean over takes and clips of ``a − b``.
        se_clips: SE over clips of each clip's take-mean difference.
        takes: takes per system (1 gives no take term).
        per_take: the difference of each take pair, in take order.
        se_takes: SD of ``per_take`` over √takes (NaN with one take).
        se: ``√(se_clips² + se_takes²)``; ``se_clips`` alone with one take.
    """

    diff: float
    se_clips: float
    takes: int
    per_take: list[float]
    se_takes: float
    se: float

    def as_dict(self) -> dict:
        """JSON-ready: a NaN ``se_takes`` (one take) becomes None, as strict JSON has no NaN."""
        out = asdict(self)
        if math.isnan(self.se_takes):
            out["se_takes"] = None
        return out


def paired_difference(a: np.ndarray, b: np.ndarray) -> PairedDifference:
    """``a``, ``b``: ``(takes, clips)`` scores (e.g. 1 correct / 0 wrong), clips in the same order.

    Raises:
        ValueError: shapes differ, or fewer than two clips.
    """
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a.shape != b.shape:
        raise ValueError(
            f"systems need the same takes and clips to be paired, got {a.shape} and {b.shape}"
        )
    takes, clips = a.shape
    if clips < 2:
        raise ValueError(f"a paired difference needs at least two clips, got {clips}")
    per_clip = (a - b).mean(axis=0)
    se_clips = float(per_clip.std(ddof=1) / math.sqrt(clips))
    per_take = (a - b).mean(axis=1)
    se_takes = float(per_take.std(ddof=1) / math.sqrt(takes)) if takes > 1 else float("nan")
    se = math.hypot(se_clips, se_takes) if takes > 1 else se_clips
    return PairedDifference(
        diff=float(per_clip.mean()),
        se_clips=se_clips,
        takes=takes,
        per_take=[float(x) for x in per_take],
        se_takes=se_takes,
        se=se,
    )
