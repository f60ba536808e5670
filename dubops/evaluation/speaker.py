"""Speaker similarity (SPK-SIM / SECS): cosine of speaker-encoder embeddings × 100.

The papers use the GE2E-style encoder of StyleDubber (Cong et al. 2024); we use
Resemblyzer's GE2E model, as the corpus report does
(:mod:`dubops.data.report.speakers`), with its own silence trimming.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, ClassVar

import numpy as np

from dubops.sample_rates import ANALYSIS_SAMPLE_RATE

# Resemblyzer's model rate.
ENCODER_SAMPLE_RATE = ANALYSIS_SAMPLE_RATE


class SpeakerEncoder:
    """Resemblyzer ``VoiceEncoder`` on CPU, loaded on first use, once per process."""

    _model: ClassVar[Any] = None
    _preprocess: ClassVar[Any] = None
    _lock = threading.Lock()

    @classmethod
    def _load(cls) -> tuple[Any, Any]:
        with cls._lock:
            if cls._model is None:
                with warnings.catch_warnings():
                    # webrtcvad imports pkg_resources, and resemblyzer a deprecated
                    # scipy path: both warn on current versions.
                    warnings.simplefilter("ignore")
                    from resemblyzer import VoiceEncoder, preprocess_wav

                cls._model = VoiceEncoder("cpu", verbose=False)
                cls._preprocess = preprocess_wav
            return cls._model, cls._preprocess

    def embed(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        """L2-normalised ``(256,)`` embedding of a mono wave at ``sample_rate``."""
        from dubops.audio import resample

        wave = resample(np.asarray(wave, dtype=np.float32), sample_rate, ENCODER_SAMPLE_RATE)
        if len(wave) == 0:
            raise ValueError("cannot embed an empty wave")
        model, preprocess_wav = self._load()
        trimmed = preprocess_wav(wave)
        # Silence trimming can leave nothing of a very quiet clip: embed the raw wave then.
        return model.embed_utterance(trimmed if len(trimmed) > 1600 else wave)


def speaker_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings, × 100 (the papers' SPK-SIM scale)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    if denom == 0:
        raise ValueError("speaker similarity of a zero embedding is undefined")
    return float(100.0 * (a @ b) / denom)
