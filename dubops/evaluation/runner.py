"""Score folders of generated wavs (``<clip_id>.wav``) against the corpus.

All systems are scored in one pool of worker processes, one job per clip: the
corpus side of a clip is computed once and every system's wav for that clip is
scored against it (:mod:`dubops.evaluation.scoring`); then each system's
per-clip table is aggregated. The ground truth's own WER is always computed
beside each prediction's, with the same recogniser, since it is the floor any
model can reach with that recogniser.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from dubops.data.layout import CorpusLayout
from dubops.errors import InputError
from dubops.evaluation.scoring import EvalSettings, init_worker, score_clip
from dubops.pools import map_unordered

logger = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
TEST_SPLITS = ("test_s1", "test_s2")


def select_clips(
    corpus_root: str | Path,
    splits: tuple[str, ...] = TEST_SPLITS,
    max_clips: int | None = None,
) -> pd.DataFrame:
    """The manifest rows of ``splits`` (the first ``max_clips`` of them in manifest
    order when given); a clear error when there are none."""
    if max_clips is not None and max_clips < 1:
        raise ValueError(f"max_clips must be at least 1, got {max_clips}")
    layout = CorpusLayout(Path(corpus_root))
    if not layout.manifest.is_file():
        raise InputError(f"no manifest at {layout.manifest}; pass the corpus folder with --ref")
    manifest = pd.read_parquet(layout.manifest)
    clips = manifest[manifest["split"].isin(splits)]
    if clips.empty:
        raise InputError(f"the manifest has no clips in splits {list(splits)}")
    return clips.head(max_clips).reset_index(drop=True)


def _jobs(systems: dict[str, Path], clips: pd.DataFrame) -> list[tuple[dict, dict[str, str]]]:
    """One job per clip that some system has a wav for; a clear error for an empty system."""
    for name, folder in systems.items():
        if not Path(folder).is_dir():
            raise InputError(f"prediction folder {folder} of {name} does not exist")
    jobs, found = [], dict.fromkeys(systems, 0)
    for row in clips.to_dict("records"):
        predictions = {}
        for name, folder in systems.items():
            path = Path(folder) / f"{row['clip_id']}.wav"
            if path.is_file():
                predictions[name] = str(path)
                found[name] += 1
        if predictions:
            jobs.append((row, predictions))
    for name, count in found.items():
        if count == 0:
            raise InputError(f"{systems[name]} holds no <clip_id>.wav for the selected clips")
        if count < len(clips):
            logger.warning(
                "%d of %d clips have no prediction in %s", len(clips) - count, len(clips), name
            )
    return jobs


def score_systems(
    systems: dict[str, Path],
    clips: pd.DataFrame,
    settings: EvalSettings,
    workers: int = 2,
    progress: Progress | None = None,
) -> dict[str, pd.DataFrame]:
    """Per-clip metrics of every system (name -> folder of ``<clip_id>.wav``), one pool."""
    if not systems:
        raise ValueError("no system to score")
    jobs = _jobs(systems, clips)
    records: dict[str, list[dict]] = {name: [] for name in systems}
    workers = max(1, workers)
    threads = max(1, (os.cpu_count() or 1) // workers)  # no more threads than cores
    # A worker that raises or dies ends the run with its error (dubops.pools), never a hang.
    results = map_unordered(
        score_clip, jobs, workers, initializer=init_worker, initargs=(settings, threads)
    )
    for i, result in enumerate(results, start=1):
        for name, record in result.items():
            records[name].append(record)
        if progress is not None:
            progress(i, len(jobs))
    return {
        name: pd.DataFrame(rows).sort_values("clip_id").reset_index(drop=True)
        for name, rows in records.items()
    }


def aggregate(per_clip: pd.DataFrame) -> dict:
    """Corpus-level figures from the per-clip table (means; WER over all words)."""
    from dubops.evaluation.asr import wer_of

    out: dict = {"clips": len(per_clip)}
    for column in (
        "mcd_dtw",
        "mcd_dtw_sl",
        "spk_sim_target",
        "spk_sim_prompt",
        "duration_abs_error_s",
        "duration_rel_error",
        "lse_distance",
        "lse_confidence",
        "syncnet_lse_d",
        "syncnet_lse_c",
        "emo_sim",
        "dnsmos_ovrl",
        "dnsmos_sig",
        "dnsmos_bak",
    ):
        if column in per_clip and per_clip[column].notna().any():
            out[column] = float(pd.to_numeric(per_clip[column]).mean())
    if "lse_offset" in per_clip and per_clip["lse_offset"].notna().any():
        out["lse_abs_offset_frames"] = float(pd.to_numeric(per_clip["lse_offset"]).abs().mean())
    if "syncnet_offset" in per_clip and per_clip["syncnet_offset"].notna().any():
        offsets = pd.to_numeric(per_clip["syncnet_offset"]).abs()
        out["syncnet_abs_offset_frames"] = float(offsets.mean())
    if "emo_correct" in per_clip:
        out["emo_acc"] = float(per_clip["emo_correct"].astype(float).mean())
    out["wer"] = wer_of(list(per_clip["script"]), list(per_clip["hyp"]))
    out["wer_ground_truth"] = wer_of(list(per_clip["script"]), list(per_clip["ref_hyp"]))
    return out


def summarise(per_clip: pd.DataFrame) -> dict:
    """:func:`aggregate` overall and per split."""
    summary = {"overall": aggregate(per_clip)}
    for split, part in per_clip.groupby("split"):
        summary[str(split)] = aggregate(part)
    return summary


def evaluate_systems(
    systems: dict[str, Path],
    clips: pd.DataFrame,
    settings: EvalSettings,
    workers: int = 2,
    progress: Progress | None = None,
) -> tuple[dict[str, dict], dict[str, pd.DataFrame], dict]:
    """Score and summarise every system.

    Returns:
        ``(summaries, per-clip tables, timing)``, the first two keyed by system; timing
        holds the wall seconds, clips and (clip, system) pairs scored per second.
    """
    start = time.perf_counter()
    tables = score_systems(systems, clips, settings, workers, progress)
    summaries = {name: summarise(table) for name, table in tables.items()}
    elapsed = time.perf_counter() - start
    clip_ids = {c for table in tables.values() for c in table["clip_id"]}
    pairs = sum(len(table) for table in tables.values())
    timing = {
        "seconds": round(elapsed, 2),
        "workers": max(1, workers),
        "clips": len(clip_ids),
        "systems": len(tables),
        "clips_per_second": round(len(clip_ids) / elapsed, 3),
        "clip_systems_per_second": round(pairs / elapsed, 3),
    }
    return summaries, tables, timing
