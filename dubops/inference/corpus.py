"""Dubbing corpus clips through the served path, with the named oracles beside it.

A corpus clip is dubbed as a user's request would be: its silent video, its
script and react line, its timbre prompt (another utterance of the speaker).
What the served path decides itself (the conclusion, the footage query) can be
replaced by ground truth, one named oracle at a time, to show what each part
costs:

* ``conclusion``: the clip's labelled scene type, gender, age and emotion as
  overrides, in place of the reasoner's;
* ``footage``: the library's stored vectors of the clip as the retrieval
  query, in place of the extractors' embedding of the video.

Output: ``<out>/<clip_id>.wav`` and ``<out>/<clip_id>.json`` (the result without
the wave), both written atomically; a clip with both files is skipped, so an
interrupted run resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dubops.errors import InputError
from dubops.inference.request import CONCLUSION_FIELDS, DubRequest

if TYPE_CHECKING:
    from dubops.inference.pipeline import DubbingPipeline

ORACLES = ("conclusion", "footage")


def check_oracles(oracles: Collection[str]) -> frozenset[str]:
    unknown = sorted(set(oracles) - set(ORACLES))
    if unknown:
        raise InputError(f"--oracle {unknown[0]!r}: choose from {list(ORACLES)}")
    return frozenset(oracles)


def system_name(oracles: Collection[str]) -> str:
    """The evaluation's name of a row: ``served``, ``oracle-conclusion``, ``oracle-footage``
    or ``oracle`` (both)."""
    chosen = check_oracles(oracles)
    if not chosen:
        return "served"
    if chosen == set(ORACLES):
        return "oracle"
    return "oracle-" + next(iter(chosen))


def row_request(
    data_dir: str | Path, row: dict[str, Any], oracles: Collection[str] = (), seed: int = 0
) -> DubRequest:
    """The request a corpus clip (a manifest row) makes; ground truth only as named oracles."""
    from dubops.data.layout import CorpusLayout

    chosen = check_oracles(oracles)
    layout = CorpusLayout(Path(data_dir))
    truth = {f: str(row[f]) for f in CONCLUSION_FIELDS} if "conclusion" in chosen else {}
    return DubRequest(
        video=layout.resolve(row["video_path"]),
        script=str(row["script"]),
        prompt=layout.resolve(row["prompt_audio_path"]),
        react=str(row.get("react") or ""),
        clip_id=str(row["clip_id"]),
        speaker_id=str(row.get("speaker") or "") or None,
        seed=seed,
        oracle_footage="footage" in chosen,
        **truth,
    )


def corpus_request(
    data_dir: str | Path, clip_id: str, oracles: Collection[str] = ()
) -> tuple[DubRequest, dict[str, Any]]:
    """``(request, manifest row)`` of one corpus clip by its id."""
    import pandas as pd

    from dubops.data.layout import CorpusLayout

    layout = CorpusLayout(Path(data_dir))
    if not layout.manifest.is_file():
        raise InputError(f"--data {data_dir}: no manifest.parquet; run `dubops data synth` first")
    manifest = pd.read_parquet(layout.manifest)
    rows = manifest[manifest["clip_id"] == clip_id]
    if rows.empty:
        held_out = manifest[manifest["split"].isin(["test_s2", "test_s1"])]["clip_id"].head(3)
        raise InputError(
            f"--clip {clip_id!r} is not in {layout.manifest}; held-out clips are e.g. "
            f"{list(held_out)}"
        )
    row = rows.iloc[0].to_dict()
    return row_request(data_dir, row, oracles), row


def dub_corpus(
    pipeline: DubbingPipeline,
    data_dir: str | Path,
    splits: Sequence[str],
    out_dir: str | Path,
    oracles: Collection[str] = (),
    max_clips: int | None = None,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
    seed: int = 0,
    ablation: Any = None,
) -> list[Path]:
    """Write one wav (and its result JSON) per clip; returns the wav paths, existing included."""
    from dubops.audio import write_wav
    from dubops.data.datasets import load_manifest
    from dubops.fileio import write_json

    manifest = load_manifest(data_dir, list(splits))
    if max_clips is not None:
        manifest = manifest.head(max_clips)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = manifest.to_dict("records")
    todo = [r for r in rows if not _done(out, r["clip_id"])]
    done = len(rows) - len(todo)
    if progress is not None and done:
        progress(done, len(rows))
    for start in range(0, len(todo), max(1, batch_size)):
        part = todo[start : start + batch_size]
        requests = [row_request(data_dir, r, oracles, seed) for r in part]
        for row, result in zip(part, pipeline.dub_many(requests, ablation=ablation), strict=True):
            write_json(out / f"{row['clip_id']}.json", result.to_json())
            write_wav(out / f"{row['clip_id']}.wav", result.wave, result.sample_rate)
        done += len(part)
        if progress is not None:
            progress(done, len(rows))
    return [out / f"{r['clip_id']}.wav" for r in rows]


def describe_corpus(
    pipeline: DubbingPipeline,
    data_dir: str | Path,
    splits: Sequence[str] | None,
    max_clips: int | None = None,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, list[float]]]]:
    """Monitoring's records of corpus clips as the served path sees them (no dubbing):
    ``(features, query vectors)``, one each per clip, in manifest order.

    ``splits=None`` takes every clip (a corpus made only to be watched, like a drift
    scenario)."""
    import pandas as pd

    from dubops.data.datasets import load_manifest
    from dubops.data.layout import CorpusLayout

    if splits is None:
        manifest = pd.read_parquet(CorpusLayout(Path(data_dir)).manifest)
    else:
        manifest = load_manifest(data_dir, list(splits))
    if max_clips is not None:
        manifest = manifest.head(max_clips)
    rows = manifest.to_dict("records")
    features: list[dict[str, Any]] = []
    vectors: list[dict[str, list[float]]] = []
    for start in range(0, len(rows), max(1, batch_size)):
        part = rows[start : start + batch_size]
        for f, v in pipeline.describe([row_request(data_dir, r) for r in part]):
            features.append(f)
            vectors.append(v)
        if progress is not None:
            progress(len(features), len(rows))
    return features, vectors


def read_answers(folder: str | Path) -> list[dict[str, str]]:
    """The reasoner's answers recorded in a dubbed folder's JSON files (``clip_id``, ``text``)."""
    import json

    answers = []
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text())
        answers.append({"clip_id": path.stem, "text": data.get("reasoning_text", "")})
    return answers


def _done(out: Path, clip_id: str) -> bool:
    return (out / f"{clip_id}.wav").is_file() and (out / f"{clip_id}.json").is_file()
