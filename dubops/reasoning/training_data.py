"""Corpus clips as the reasoner's training rows: images read once, then text around them.

SFT rows are TRL prompt/completion rows with an ``images`` column; preference
rows (MPO) add ``chosen`` / ``rejected`` and the two reward labels the F&O
terms need (is the format right, is the answer right).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dubops.reasoning.clip_images import read_clip_images
from dubops.reasoning.settings import ReasonerConfig


@dataclass
class ClipSet:
    """Manifest rows of some clips and, per clip, the images the reasoner sees."""

    rows: pd.DataFrame
    images: list[list[Any]]

    def __len__(self) -> int:
        return len(self.rows)

    def head(self, n: int) -> ClipSet:
        return ClipSet(self.rows.iloc[:n], self.images[:n])


def load_clips(
    data_dir: str | Path, splits: list[str], config: ReasonerConfig, limit: int | None = None
) -> ClipSet:
    """Read the images of every clip of ``splits`` (with a progress bar)."""
    from tqdm.auto import tqdm

    from dubops.data.datasets import load_manifest

    root = Path(data_dir)
    rows = load_manifest(root, splits).reset_index(drop=True)
    if limit is not None:
        rows = rows.iloc[:limit]
    if limit == 0:
        return ClipSet(rows, [])
    if rows.empty:
        raise ValueError(f"--data {root} has no clips in split(s) {splits}")
    images = [
        read_clip_images(
            root / r.video_path,
            config.keyframes,
            config.motion,
            config.image_size,
            config.motion_gain,
        )
        for r in tqdm(rows.itertuples(), total=len(rows), desc=f"reading {'+'.join(splits)}")
    ]
    return ClipSet(rows, images)


def sft_rows(clips: ClipSet, prompt_of: Any, eos: str) -> list[dict[str, Any]]:
    """``prompt`` / ``completion`` (the accepted CoT + ``eos``) / ``images`` per clip."""
    return [
        {"prompt": prompt_of(r.script), "completion": r.cot + eos, "images": images}
        for r, images in zip(clips.rows.itertuples(), clips.images, strict=True)
    ]


def corpus_rejected(row: Any) -> list[dict[str, str]]:
    """The corpus's rejected answers of one clip: ``[{"kind", "text"}]``."""
    return list(json.loads(row.rejected))


def text_corpus(clips: ClipSet) -> list[str]:
    """Everything the tokenizer should know: scripts, accepted and rejected answers."""
    from dubops.reasoning.prompts import INSTRUCTION

    texts = [INSTRUCTION]
    for r in clips.rows.itertuples():
        texts += [r.script, r.cot] + [x["text"] for x in corpus_rejected(r)]
    return texts
