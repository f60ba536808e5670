"""Scene type from the pixels alone: are dialogue, monologue and narration visible?

A shallow decision tree on cheap frame features: the number of characters
counted from the frame, and each character's mouth motion (variance and mean
frame-to-frame change of its opening), sorted so the features do not depend on
who stands where. Trained on train, tested on the held-out splits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dubops.data.report.classify import evaluate_classifier
from dubops.data.report.frames import MAX_PEOPLE

if TYPE_CHECKING:
    import pandas as pd

    from dubops.data.report.frames import ClipVideo


def scene_features(blobs: int, mouths: np.ndarray) -> np.ndarray:
    """``[blobs, var_1..var_3, motion_1..motion_3]``, characters by decreasing motion.

    Args:
        blobs: characters counted on screen.
        mouths: ``(p, n)`` mouth openings of those characters.
    """
    var = np.zeros(MAX_PEOPLE)
    motion = np.zeros(MAX_PEOPLE)
    if mouths.shape[0] and mouths.shape[1] > 1:
        v = mouths.var(axis=1)
        m = np.abs(np.diff(mouths, axis=1)).mean(axis=1)
        order = np.argsort(-m)[:MAX_PEOPLE]
        var[: len(order)] = v[order]
        motion[: len(order)] = m[order]
    return np.concatenate([[blobs], var, motion])


def _make_model():
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(max_depth=4, random_state=0)


def measure_scene_type(clips: pd.DataFrame, videos: dict[str, ClipVideo]) -> dict:
    """Held-out scene-type accuracy from frame features, plus how well people are counted."""
    ids = list(clips["clip_id"])
    features = np.stack([scene_features(videos[c].blobs, videos[c].blob_mouths) for c in ids])
    result = evaluate_classifier(
        features, list(clips["scene_type"]), list(clips["split"]), _make_model
    )
    counted = np.array([videos[c].blobs for c in ids])
    result["people_count_accuracy"] = float(np.mean(counted == clips["num_people"].to_numpy()))
    return result
