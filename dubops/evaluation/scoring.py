"""Per-clip scoring inside a worker process.

Everything that depends only on the corpus (the target's and the prompt's
speaker embeddings, cepstra and emotion features, the ground truth's
transcript, the talker's mouth track, SyncNet's lip embeddings) is computed
once per clip in :func:`reference_side`; every system's wav for that clip is
then scored against it by :func:`score_against`. Heavy models (Resemblyzer,
the recogniser, the emotion classifier, SyncNet; DNSMOS inside speechmos) load
once per worker in :func:`init_worker`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dubops.config import AudioConfig
from dubops.data.layout import CorpusLayout
from dubops.sample_rates import ANALYSIS_SAMPLE_RATE

_EMOTION_RATE = 16_000  # the classifier works at 16 kHz, as it was trained
_ASR_RATE = ANALYSIS_SAMPLE_RATE


@dataclass(frozen=True)
class EvalSettings:
    """What one evaluation run needs in every worker (picklable)."""

    corpus_root: str
    audio: AudioConfig
    asr: str = "sphinx"
    lm_text: tuple[str, ...] = ()
    emotion_dir: str | None = None
    mos: bool = True
    mouth: str = "cartoon"  # mouth tracker for the LSE proxy: cartoon or face-mesh
    syncnet_path: str | None = None  # SyncNet weights: exact LSE-D / LSE-C as well


_worker: dict[str, Any] = {}


def init_worker(settings: EvalSettings, threads: int) -> None:
    """Load the run's models into this process, each limited to ``threads`` threads.

    Workers x threads must not exceed the cores: with two 2-thread workers on two
    cores, Resemblyzer's LSTM took 7.5 s per utterance instead of 0.1 s.
    """
    import torch
    from threadpoolctl import threadpool_limits

    from dubops.evaluation.asr import build_recognizer
    from dubops.evaluation.mos import set_dnsmos_threads
    from dubops.evaluation.speaker import SpeakerEncoder

    torch.set_num_threads(threads)
    # NumPy's BLAS too: its thread count would follow the cores, and with it the last
    # bits of the scores (the same model must score the same on any machine).
    threadpool_limits(limits=threads)
    set_dnsmos_threads(threads)
    _worker["settings"] = settings
    _worker["speaker"] = SpeakerEncoder()
    _worker["asr"] = build_recognizer(settings.asr, list(settings.lm_text) or None)
    _worker["emotion"] = None
    if settings.emotion_dir:
        from dubops.evaluation.emotion import EmotionClassifier

        _worker["emotion"] = EmotionClassifier.load(settings.emotion_dir)
    _worker["syncnet"] = None
    if settings.syncnet_path:
        from dubops.evaluation.syncnet import load_syncnet

        _worker["syncnet"] = load_syncnet(settings.syncnet_path)


@dataclass
class ClipReference:
    """The corpus side of one clip, shared by every system scored on it."""

    row: dict
    ref_cepstrum: np.ndarray  # (n, d)
    ref_embedding: np.ndarray  # (256,)
    prompt_embedding: np.ndarray  # (256,)
    ref_hyp: str
    mouth: Any  # lipsync.MouthTrack
    fps: int
    num_frames: int
    prompt_emotion_features: np.ndarray | None  # (f,)
    ref_emotion_proba: np.ndarray | None  # (7,)
    lip_embeddings: np.ndarray | None  # (n - 4, 1024) SyncNet lip windows


def reference_side(row: dict) -> ClipReference:
    """Everything of ``row`` that does not depend on the scored wav."""
    from dubops.audio import read_wav, resample
    from dubops.evaluation.lipsync import track_talker_mouth
    from dubops.evaluation.mcd import mel_cepstrum
    from dubops.video import read_video

    settings: EvalSettings = _worker["settings"]
    layout = CorpusLayout(Path(settings.corpus_root))
    sr = settings.audio.sample_rate
    ref, _ = read_wav(layout.resolve(row["audio_path"]), sr)
    prompt, _ = read_wav(layout.resolve(row["prompt_audio_path"]), sr)
    encoder = _worker["speaker"]
    frames, fps = read_video(layout.resolve(row["video_path"]))
    mouth = track_talker_mouth(
        frames, int(row["num_people"]), int(row["talker_index"]), settings.mouth
    )
    prompt_features = ref_proba = None
    if _worker["emotion"] is not None:
        from dubops.evaluation.emotion import combine_features, utterance_features

        ref16, prompt16 = (resample(w, sr, _EMOTION_RATE) for w in (ref, prompt))
        prompt_features = utterance_features(
            prompt16, _EMOTION_RATE, len(row["prompt_text"].split())
        )
        own = utterance_features(ref16, _EMOTION_RATE, len(row["script"].split()))
        ref_proba = _worker["emotion"].predict_proba_features(
            combine_features(own, prompt_features)
        )[0]
    lips = None
    if _worker["syncnet"] is not None and mouth.boxes is not None:
        from dubops.evaluation.syncnet import crop_faces, embed_lip_windows

        lips = embed_lip_windows(_worker["syncnet"], crop_faces(frames, mouth.boxes))
    return ClipReference(
        row=row,
        ref_cepstrum=mel_cepstrum(ref, sr, settings.audio),
        ref_embedding=encoder.embed(ref, sr),
        prompt_embedding=encoder.embed(prompt, sr),
        ref_hyp=_worker["asr"].transcribe(resample(ref, sr, _ASR_RATE)),
        mouth=mouth,
        fps=int(fps),
        num_frames=len(frames),
        prompt_emotion_features=prompt_features,
        ref_emotion_proba=ref_proba,
        lip_embeddings=lips,
    )


def score_against(ref: ClipReference, gen: np.ndarray) -> dict:
    """One system's per-clip record: its wav ``gen`` (at the run's rate) against ``ref``."""
    from dubops.audio import resample
    from dubops.evaluation.duration import duration_fit
    from dubops.evaluation.lipsync import sync_with_track
    from dubops.evaluation.mcd import mcd_from_cepstra, mel_cepstrum
    from dubops.evaluation.speaker import speaker_similarity

    settings: EvalSettings = _worker["settings"]
    row, sr = ref.row, settings.audio.sample_rate
    record: dict = {"clip_id": row["clip_id"], "split": row["split"], "speaker": row["speaker"]}
    record |= mcd_from_cepstra(ref.ref_cepstrum, mel_cepstrum(gen, sr, settings.audio))
    gen_emb = _worker["speaker"].embed(gen, sr)
    record["spk_sim_target"] = speaker_similarity(gen_emb, ref.ref_embedding)
    record["spk_sim_prompt"] = speaker_similarity(gen_emb, ref.prompt_embedding)
    fit = duration_fit(len(gen) / sr, float(row["video_seconds"]))
    record |= {"gen_seconds": len(gen) / sr, "duration_abs_error_s": fit["abs_error_s"]}
    record["duration_rel_error"] = fit["rel_error"]
    opening = ref.mouth.opening
    sync = None if opening is None else sync_with_track(opening, gen, sr, ref.fps)
    record["lse_offset"] = None if sync is None else sync.offset_frames
    record["lse_confidence"] = None if sync is None else sync.confidence
    record["lse_distance"] = None if sync is None else sync.distance
    record["lse_note"] = ref.mouth.reason
    if _worker["syncnet"] is not None:
        record |= _syncnet_record(ref, gen, sr)
    if ref.ref_emotion_proba is not None:
        record |= _emotion_record(ref, resample(gen, sr, _EMOTION_RATE))
    record["hyp"] = _worker["asr"].transcribe(resample(gen, sr, _ASR_RATE))
    record["ref_hyp"] = ref.ref_hyp
    record["script"] = row["script"]
    if settings.mos:
        from dubops.evaluation.mos import dnsmos

        for key, value in dnsmos(gen, sr).items():
            record[f"dnsmos_{key}"] = value
    return record


def _emotion_record(ref: ClipReference, gen16: np.ndarray) -> dict:
    from dubops.evaluation.emotion import combine_features, utterance_features

    classifier = _worker["emotion"]
    own = utterance_features(gen16, _EMOTION_RATE, len(ref.row["script"].split()))
    p_gen = classifier.predict_proba_features(combine_features(own, ref.prompt_emotion_features))[0]
    p_ref = ref.ref_emotion_proba
    pred = classifier.classes[int(np.argmax(p_gen))]
    return {
        "emo_pred": pred,
        "emo_correct": pred == ref.row["emotion"],
        "emo_sim": float(
            100 * p_gen @ p_ref / (np.linalg.norm(p_gen) * np.linalg.norm(p_ref) + 1e-12)
        ),
    }


def _syncnet_record(ref: ClipReference, gen: np.ndarray, sr: int) -> dict:
    from dubops.evaluation.syncnet import FPS, score_clip

    if ref.lip_embeddings is None:
        return {"syncnet_offset": None, "syncnet_lse_d": None, "syncnet_lse_c": None}
    if ref.fps != FPS:
        raise ValueError(f"SyncNet scores {FPS} fps video; {ref.row['clip_id']} is {ref.fps} fps")
    score = score_clip(_worker["syncnet"], ref.lip_embeddings, ref.num_frames, gen, sr)
    return {
        "syncnet_offset": score.offset_frames,
        "syncnet_lse_d": score.lse_d,
        "syncnet_lse_c": score.lse_c,
    }


def score_clip(job: tuple[dict, dict[str, str]]) -> dict[str, dict]:
    """``(manifest row, {system: wav path})`` -> ``{system: record}``."""
    from dubops.audio import read_wav

    row, predictions = job
    ref = reference_side(row)
    sr = _worker["settings"].audio.sample_rate
    return {
        system: score_against(ref, read_wav(path, sr)[0]) for system, path in predictions.items()
    }
