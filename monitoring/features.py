"""What monitoring watches of one dub: the clip as the model saw it, never the media.

One function, :func:`clip_features`, turns a request's decoded media, the
conclusion it dubbed with and the footage it retrieved into a flat record. The
evaluation's reference profile and every served request use it, so the two are
compared like with like. Embeddings (the extractors' query vectors) stay beside
it in :attr:`DubResult.query_vectors`; they are compared as whole vectors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The reasoner's conclusion, as dubbed (reasoner, override or fallback value).
CATEGORICAL = ("scene_type", "gender", "age", "emotion")
# Numbers whose distribution shifts when the incoming clips change.
SCALAR = (
    "video_seconds",
    "video_fps",
    "video_width",
    "video_height",
    "prompt_seconds",
    "prompt_dbfs",
    "prompt_pitch_hz",
    "script_letters",
    "letters_per_second",
    "similarity_scene",
    "similarity_face",
    "similarity_text",
)
# The extractors' query vectors, one per modality.
EMBEDDING = ("scene", "face", "text")
NONE = "none"  # a categorical feature without a value (the model dubbed without it)


def clip_features(
    script: str,
    frames_shape: tuple[int, ...],
    fps: float,
    prompt: np.ndarray,
    prompt_rate: int,
    target_seconds: float | None,
    conclusion: dict[str, str] | None,
    footage: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """The monitored record of one clip: the :data:`CATEGORICAL` and :data:`SCALAR` keys.

    A similarity is the mean of the modality's retrieved hits (NaN when the model
    retrieves nothing); pitch is the prompt's median F0 (NaN when unvoiced).
    """
    frames, height, width = int(frames_shape[0]), int(frames_shape[1]), int(frames_shape[2])
    seconds = frames / fps if fps else 0.0
    slot = target_seconds or seconds
    letters = sum(c.isalnum() for c in script)
    rms = float(np.sqrt(np.mean(np.square(prompt, dtype=np.float64)))) if len(prompt) else 0.0
    record: dict[str, Any] = {
        name: str((conclusion or {}).get(name) or NONE) for name in CATEGORICAL
    }
    record |= {
        "video_seconds": round(seconds, 4),
        "video_fps": float(fps),
        "video_width": float(width),
        "video_height": float(height),
        "prompt_seconds": round(len(prompt) / prompt_rate, 4) if prompt_rate else 0.0,
        "prompt_dbfs": round(20 * float(np.log10(max(rms, 1e-12))), 3),
        "prompt_pitch_hz": prompt_pitch_hz(prompt, prompt_rate),
        "script_letters": float(letters),
        "letters_per_second": round(letters / slot, 4) if slot else 0.0,
    }
    for modality in EMBEDDING:
        hits = footage.get(modality) or []
        sims = [float(h["similarity"]) for h in hits if "similarity" in h]
        record[f"similarity_{modality}"] = round(float(np.mean(sims)), 6) if sims else float("nan")
    return record


def prompt_pitch_hz(prompt: np.ndarray, rate: int) -> float:
    """The prompt's median F0 in Hz (the corpus report's YIN analysis), NaN if unvoiced."""
    from dubops.data.report.prosody import pitch_energy_track

    if not len(prompt) or not rate:
        return float("nan")
    _, logf0, _ = pitch_energy_track(np.asarray(prompt, dtype=np.float32), rate)
    return round(float(np.exp(np.median(logf0))), 2) if len(logf0) else float("nan")


def json_ready(record: dict[str, Any]) -> dict[str, Any]:
    """A feature record with NaN as None: NaN is not JSON (logs and references store it)."""
    return {
        k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in record.items()
    }


def embedding_rows(vectors: list[dict[str, Any]], modality: str) -> np.ndarray | None:
    """One modality's vectors of many clips as a ``(clips, dim)`` array (None if absent)."""
    rows = [np.asarray(v[modality], dtype=np.float64) for v in vectors if v.get(modality)]
    return np.stack(rows) if rows else None
