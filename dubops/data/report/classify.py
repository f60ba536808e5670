"""Held-out accuracy of a small classifier, the shared protocol of the trained parts.

Train on the ``train`` split and test on the held-out ones (val, test_s1,
test_s2); when the held-out set is too small for a figure to mean anything,
fall back to stratified k-fold cross-validation over all clips and say so in
``method``, so a reader never mistakes one for the other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dubops.data.report.clips import is_held_out

# Fewer held-out clips than this (or than two per class) -> cross-validation.
MIN_HELD_OUT = 20
CV_FOLDS = 5


def evaluate_classifier(
    features: np.ndarray,
    labels: Sequence[str],
    splits: Sequence[str],
    make_model: Callable[[], Any],
) -> dict:
    """Accuracy of ``make_model()`` (an sklearn estimator) on ``features -> labels``.

    Returns:
        ``accuracy`` (None when nothing can be measured), ``method``
        (``"held_out"`` or ``"cv<k>"``), ``train``/``test`` counts, per-class
        recall and the most frequent confusions.
    """
    y = np.asarray(labels)
    held = np.array([is_held_out(s) for s in splits])
    classes = sorted(set(y))
    if len(classes) < 2:
        return {"accuracy": None, "method": "none", "reason": "fewer than two classes"}
    enough_held = held.sum() >= max(MIN_HELD_OUT, 2 * len(classes))
    if enough_held and len(set(y[~held])) == len(classes):
        model = make_model().fit(features[~held], y[~held])
        truth, predicted = y[held], model.predict(features[held])
        method, n_train = "held_out", int((~held).sum())
    else:
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        folds = min(CV_FOLDS, min(Counter(y).values()))
        if folds < 2:
            return {"accuracy": None, "method": "none", "reason": "a class has a single clip"}
        cv = StratifiedKFold(folds, shuffle=True, random_state=0)
        truth, predicted = y, cross_val_predict(make_model(), features, y, cv=cv)
        method, n_train = f"cv{folds}", int(len(y) * (folds - 1) / folds)
    hits = truth == predicted
    confusions = Counter((t, p) for t, p in zip(truth, predicted, strict=True) if t != p)
    return {
        "accuracy": float(hits.mean()),
        "method": method,
        "train": n_train,
        "test": len(truth),
        "recall": {c: round(float(hits[truth == c].mean()), 3) for c in classes if c in truth},
        "top_confusions": [f"{t}->{p} x{c}" for (t, p), c in confusions.most_common(5)],
    }
