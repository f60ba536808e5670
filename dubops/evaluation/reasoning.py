"""Reasoning metrics: scene-type accuracy and per-class recall (DeepDubber-V1 Table 1-2),
attribute accuracy and the format-validity rate, from a JSONL of reasoner outputs.

Each JSONL line: ``{"clip_id": "...", "text": "<SUMMARY>…</CONCLUSION>"}``. Clips whose
answer does not parse count as wrong for every field and lower the validity rate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dubops.data.schema import SCENE_TYPES
from dubops.errors import InputError
from dubops.reasoning.parser import ReasoningParseError, parse_answer

ATTRIBUTES = ("scene_type", "gender", "age", "emotion")


def read_reasoning_jsonl(path: str | Path) -> dict[str, str]:
    """``clip_id -> text``; a bad line raises ValueError naming its number."""
    outputs: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            outputs[str(record["clip_id"])] = str(record["text"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(
                f"{path}:{number}: expected a JSON object with clip_id and text ({exc})"
            ) from None
    return outputs


def score_reasoning(outputs: dict[str, str], references: pd.DataFrame) -> dict:
    """Score reasoner answers against the manifest rows of the same clips.

    Returns:
        format validity, accuracy per attribute, scene-type recall per class and
        the average recall, and the confusion matrix of scene types.
    """
    rows = references[references["clip_id"].isin(outputs)]
    if rows.empty:
        raise InputError("no reasoning output matches a clip of the reference manifest")
    parsed = []
    for row in rows.itertuples(index=False):
        try:
            conclusion = parse_answer(outputs[row.clip_id])
            parsed.append({a: getattr(conclusion, a) for a in ATTRIBUTES} | {"valid": True})
        except ReasoningParseError:
            parsed.append({a: None for a in ATTRIBUTES} | {"valid": False})
    pred = pd.DataFrame(parsed, index=rows.index)
    result: dict = {"clips": len(rows), "format_validity": float(pred["valid"].mean())}
    for attr in ATTRIBUTES:
        result[f"{attr}_accuracy"] = float((pred[attr] == rows[attr]).mean())
    recalls = {}
    for scene in SCENE_TYPES:
        mask = rows["scene_type"] == scene
        if mask.any():
            recalls[scene] = float((pred.loc[mask, "scene_type"] == scene).mean())
    result["scene_type_recall"] = recalls
    result["scene_type_average_recall"] = float(sum(recalls.values()) / max(1, len(recalls)))
    labels = [*SCENE_TYPES, "unparsed"]
    confusion = pd.crosstab(rows["scene_type"], pred["scene_type"].fillna("unparsed")).reindex(
        index=list(SCENE_TYPES), columns=labels, fill_value=0
    )
    result["scene_type_confusion"] = {
        "labels": labels,
        "matrix": confusion.astype(int).values.tolist(),
    }
    return result
