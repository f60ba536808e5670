"""The majority-class reasoning baseline: every clip gets the training split's commonest labels.

It shows what the accuracies are worth: a reasoner that ignores the clip
entirely scores exactly this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from dubops.data.cot import format_conclusion
from dubops.data.schema import COT_TAGS

ATTRIBUTES = ("scene_type", "gender", "age", "emotion")


def majority_conclusion(train: pd.DataFrame) -> dict[str, str]:
    """The commonest value of each attribute (ties: alphabetical first)."""
    return {
        a: str(
            train[a]
            .value_counts()
            .sort_index()
            .sort_values(ascending=False, kind="stable")
            .index[0]
        )
        for a in ATTRIBUTES
    }


def majority_answers(data_dir: str | Path, rows: pd.DataFrame) -> list[dict[str, Any]]:
    """A well-formed answer with the majority conclusion for each row."""
    from dubops.data.datasets import load_manifest

    labels = majority_conclusion(load_manifest(data_dir, ["train"]))
    bodies = {"CONCLUSION": format_conclusion(**labels)}
    text = "".join(f"<{t}>{bodies.get(t, 'majority-class baseline')}</{t}>" for t in COT_TAGS)
    return [
        {
            "clip_id": cid,
            "text": text,
            "parse_ok": True,
            "conclusion": labels,
            "error": None,
            "latency_s": 0.0,
        }
        for cid in rows.clip_id
    ]
