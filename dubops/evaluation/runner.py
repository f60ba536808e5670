"""Score a folder of generated wavs (``<clip_id>.wav``) against the corpus.

Every clip is scored in a worker process (heavy models, Resemblyzer, the
emotion classifier, the recogniser, DNSMOS, load once per worker), then the
per-clip table is aggregated. The ground truth's own WER is always computed
beside the prediction's, with the same recogniser, since it is the floor any
model can reach with that recogniser.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dubops.config import AudioConfig
from dubops.data.layout import CorpusLayout

logger = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
TEST_SPLITS = ("test_s1", "test_s2")


@dataclass(frozen=True)
class EvalSettings:
    """What one evaluation run needs in every worker (picklable)."""

    corpus_root: str
    audio: AudioConfig
    asr: str = "sphinx"
    lm_text: tuple[str, ...] = ()
    emotion_dir: str | None = None
    mos: bool = True


_worker: dict = {}


def _init_worker(settings: EvalSettings) -> None:
    from dubops.evaluation.asr import build_recognizer
    from dubops.evaluation.speaker import SpeakerEncoder

    _worker["settings"] = settings
    _worker["speaker"] = SpeakerEncoder()
    _worker["asr"] = build_recognizer(settings.asr, list(settings.lm_text) or None)
    _worker["emotion"] = None
    if settings.emotion_dir:
        from dubops.evaluation.emotion import EmotionClassifier

        _worker["emotion"] = EmotionClassifier.load(settings.emotion_dir)


def _score_clip(job: tuple[dict, str]) -> dict:
    from dubops.audio import read_wav, resample
    from dubops.evaluation.duration import duration_fit
    from dubops.evaluation.lipsync import clip_sync
    from dubops.evaluation.mcd import mcd_pair
    from dubops.evaluation.speaker import speaker_similarity
    from dubops.video import read_video

    row, pred_path = job
    settings: EvalSettings = _worker["settings"]
    layout = CorpusLayout(Path(settings.corpus_root))
    sr = settings.audio.sample_rate
    gen, _ = read_wav(pred_path, sr)
    ref, _ = read_wav(layout.resolve(row["audio_path"]), sr)
    prompt, _ = read_wav(layout.resolve(row["prompt_audio_path"]), sr)
    record: dict = {"clip_id": row["clip_id"], "split": row["split"], "speaker": row["speaker"]}
    record |= mcd_pair(ref, gen, sr, settings.audio)
    encoder = _worker["speaker"]
    gen_emb = encoder.embed(gen, sr)
    record["spk_sim_target"] = speaker_similarity(gen_emb, encoder.embed(ref, sr))
    record["spk_sim_prompt"] = speaker_similarity(gen_emb, encoder.embed(prompt, sr))
    fit = duration_fit(len(gen) / sr, float(row["video_seconds"]))
    record |= {"gen_seconds": len(gen) / sr, "duration_abs_error_s": fit["abs_error_s"]}
    record["duration_rel_error"] = fit["rel_error"]
    frames, fps = read_video(layout.resolve(row["video_path"]))
    sync = clip_sync(frames, int(row["num_people"]), int(row["talker_index"]), gen, sr, int(fps))
    record["lse_offset"] = None if sync is None else sync.offset_frames
    record["lse_confidence"] = None if sync is None else sync.confidence
    record["lse_distance"] = None if sync is None else sync.distance
    emotion = _worker["emotion"]
    if emotion is not None:
        # The classifier works at 16 kHz, as it was trained.
        gen16, ref16, prompt16 = (resample(w, sr, 16_000) for w in (gen, ref, prompt))
        texts = (row["script"], row["prompt_text"])
        p_gen = emotion.predict_proba(gen16, 16_000, prompt16, *texts)
        p_ref = emotion.predict_proba(ref16, 16_000, prompt16, *texts)
        record["emo_pred"] = emotion.classes[int(np.argmax(p_gen))]
        record["emo_correct"] = record["emo_pred"] == row["emotion"]
        record["emo_sim"] = float(
            100 * p_gen @ p_ref / (np.linalg.norm(p_gen) * np.linalg.norm(p_ref) + 1e-12)
        )
    asr = _worker["asr"]
    record["hyp"] = asr.transcribe(resample(gen, sr, 16_000))
    record["ref_hyp"] = asr.transcribe(resample(ref, sr, 16_000))
    record["script"] = row["script"]
    if settings.mos:
        from dubops.evaluation.mos import dnsmos

        for key, value in dnsmos(gen, sr).items():
            record[f"dnsmos_{key}"] = value
    return record


def select_clips(corpus_root: str | Path, splits: tuple[str, ...] = TEST_SPLITS) -> pd.DataFrame:
    """The manifest rows of ``splits``; a clear error when there are none."""
    layout = CorpusLayout(Path(corpus_root))
    if not layout.manifest.is_file():
        raise ValueError(f"no manifest at {layout.manifest}; pass the corpus folder with --ref")
    manifest = pd.read_parquet(layout.manifest)
    clips = manifest[manifest["split"].isin(splits)]
    if clips.empty:
        raise ValueError(f"the manifest has no clips in splits {list(splits)}")
    return clips.reset_index(drop=True)


def score_folder(
    pred_dir: str | Path,
    clips: pd.DataFrame,
    settings: EvalSettings,
    workers: int = 2,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Per-clip metrics of every clip of ``clips`` that has ``<clip_id>.wav`` in ``pred_dir``."""
    pred = Path(pred_dir)
    if not pred.is_dir():
        raise ValueError(f"prediction folder {pred} does not exist")
    jobs = [
        (row, str(pred / f"{row['clip_id']}.wav"))
        for row in clips.to_dict("records")
        if (pred / f"{row['clip_id']}.wav").is_file()
    ]
    if not jobs:
        raise ValueError(f"{pred} holds no <clip_id>.wav for the selected clips")
    missing = len(clips) - len(jobs)
    if missing:
        logger.warning("%d of %d clips have no prediction in %s", missing, len(clips), pred)
    records = []
    context = multiprocessing.get_context("forkserver")
    with context.Pool(max(1, workers), initializer=_init_worker, initargs=(settings,)) as pool:
        for i, record in enumerate(pool.imap_unordered(_score_clip, jobs), start=1):
            records.append(record)
            if progress is not None:
                progress(i, len(jobs))
    return pd.DataFrame(records).sort_values("clip_id").reset_index(drop=True)


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
        "emo_sim",
        "dnsmos_ovrl",
        "dnsmos_sig",
        "dnsmos_bak",
    ):
        if column in per_clip and per_clip[column].notna().any():
            out[column] = float(pd.to_numeric(per_clip[column]).mean())
    if "lse_offset" in per_clip and per_clip["lse_offset"].notna().any():
        out["lse_abs_offset_frames"] = float(pd.to_numeric(per_clip["lse_offset"]).abs().mean())
    if "emo_correct" in per_clip:
        out["emo_acc"] = float(per_clip["emo_correct"].astype(float).mean())
    out["wer"] = wer_of(list(per_clip["script"]), list(per_clip["hyp"]))
    out["wer_ground_truth"] = wer_of(list(per_clip["script"]), list(per_clip["ref_hyp"]))
    return out


def evaluate(
    pred_dir: str | Path,
    clips: pd.DataFrame,
    settings: EvalSettings,
    workers: int = 2,
    progress: Progress | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Score and aggregate, overall and per split."""
    start = time.perf_counter()
    per_clip = score_folder(pred_dir, clips, settings, workers, progress)
    summary = {"overall": aggregate(per_clip)}
    for split, part in per_clip.groupby("split"):
        summary[str(split)] = aggregate(part)
    elapsed = time.perf_counter() - start
    summary["seconds"] = round(elapsed, 2)
    summary["clips_per_second"] = round(len(per_clip) / elapsed, 3)
    return summary, per_clip
