"""Speaker identification with Resemblyzer's GE2E embeddings (nearest centroid).

Resemblyzer 0.1.4 already calls librosa with keywords (``y=``, ``sr=``,
``orig_sr=``), so its own ``preprocess_wav`` (volume normalisation, webrtcvad
silence trimming) and mel front end (40 mels, 25 ms / 10 ms at 16 kHz) run
unchanged on librosa 0.11; we only resample to 16 kHz ourselves. Its
checkpoint holds plain tensors, so torch's ``weights_only`` loading accepts it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from dubops.data.report.clips import REPORT_SAMPLE_RATE, Progress, clip_hash

if TYPE_CHECKING:
    import pandas as pd


def embed_waves(waves: Sequence[np.ndarray], progress: Progress | None = None) -> np.ndarray:
    """GE2E embeddings ``(n, 256)``, L2-normalised, of 16 kHz mono waves."""
    from dubops.evaluation.speaker import ENCODER_SAMPLE_RATE, SpeakerEncoder

    encoder = SpeakerEncoder()
    out = np.zeros((len(waves), 256), dtype=np.float32)
    for i, wave in enumerate(waves):
        out[i] = encoder.embed(wave, ENCODER_SAMPLE_RATE)
        if progress is not None:
            progress("speaker embeddings", i + 1, len(waves))
    return out


def split_enrol_test(clip_ids: Sequence[str], speakers: Sequence[str]) -> np.ndarray:
    """Boolean mask of enrolment clips: per speaker, the half with the lowest clip hash.

    Speakers with a single clip are enrolment-only (they still compete as centroids).
    """
    enrol = np.zeros(len(clip_ids), dtype=bool)
    by_speaker: dict[str, list[int]] = {}
    for i, spk in enumerate(speakers):
        by_speaker.setdefault(spk, []).append(i)
    for idx in by_speaker.values():
        idx.sort(key=lambda i: clip_hash(clip_ids[i]))
        enrol[idx[: max(1, (len(idx) + 1) // 2)]] = True
    return enrol


def nearest_centroid_accuracy(
    embeddings: np.ndarray, speakers: Sequence[str], clip_ids: Sequence[str]
) -> dict:
    """Identify each test clip's speaker by the closest enrolment centroid (cosine).

    Returns:
        ``accuracy``, counts, per-speaker accuracy and the most frequent confusions.
    """
    speakers = list(speakers)
    spk = np.asarray(speakers)
    enrol = split_enrol_test(clip_ids, speakers)
    names = sorted(set(speakers))
    centroids = np.stack([embeddings[enrol & (spk == n)].mean(0) for n in names])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    test = np.flatnonzero(~enrol)
    counts = {"speakers": len(names), "enrol_clips": int(enrol.sum()), "test_clips": len(test)}
    if len(test) == 0:
        return {"accuracy": None, **counts}
    predicted = np.asarray(names)[np.argmax(embeddings[test] @ centroids.T, axis=1)]
    truth = spk[test]
    hits = predicted == truth
    per_speaker = {n: round(float(hits[truth == n].mean()), 3) for n in names if n in truth}
    confusions = Counter((t, p) for t, p in zip(truth, predicted, strict=True) if t != p)
    return {
        "accuracy": float(hits.mean()),
        **counts,
        "per_speaker": per_speaker,
        "top_confusions": [f"{t}->{p} x{c}" for (t, p), c in confusions.most_common(5)],
    }


def measure_speaker_id(
    clips: pd.DataFrame, waves: dict[str, np.ndarray], progress: Progress | None = None
) -> dict:
    """Speaker identification accuracy over ``clips`` (all splits, enrol/test by hash)."""
    assert REPORT_SAMPLE_RATE == 16_000  # the GE2E model's rate
    ids = list(clips["clip_id"])
    embeddings = embed_waves([waves[c] for c in ids], progress)
    return nearest_centroid_accuracy(embeddings, list(clips["speaker"]), ids)
