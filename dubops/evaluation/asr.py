"""Speech recognisers for WER: PocketSphinx (offline, ships its model) or a local Whisper.

``sphinx`` decodes with a bigram LM learnt from the training text
(:mod:`dubops.data.report.corpus_lm`), ``sphinx-general`` with PocketSphinx's
general English LM, ``whisper:/path`` with a transformers Whisper checkpoint
from a local folder (nothing is downloaded). All take 16 kHz mono float audio.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from dubops.data.report.wer import SphinxRecognizer, word_error_rate
from dubops.errors import InputError
from dubops.sample_rates import ANALYSIS_SAMPLE_RATE


class Recognizer(Protocol):
    name: str

    def transcribe(self, wave_16k: np.ndarray) -> str: ...


class _Sphinx:
    def __init__(self, lm_text: list[str] | None) -> None:
        self._inner = SphinxRecognizer(lm_text)
        self._initial_cmn = self._inner.decoder.get_cmn()
        self.name = f"pocketsphinx/{self._inner.mode}"

    def transcribe(self, wave_16k: np.ndarray) -> str:
        # PocketSphinx's front end keeps state from one utterance to the next (the
        # live cepstral mean, and more: restoring the mean alone still left 2 of 30
        # clips decoded differently after a loud utterance), so a transcript depended
        # on what the worker decoded before. Rebuilding the feature pipeline per
        # utterance (free: 14.1 s for 60 decodes either way) makes it depend on the
        # audio alone: 0 of 30 differ.
        self._inner.decoder.reinit_feat()
        self._inner.decoder.set_cmn(self._initial_cmn)
        return self._inner.transcribe(wave_16k)


class _Whisper:
    def __init__(self, path: Path) -> None:
        if not path.is_dir():
            raise InputError(
                f"Whisper checkpoint folder {path} does not exist; pass --asr whisper:/dir"
            )
        try:
            from transformers import pipeline
        except ImportError:
            raise InputError("--asr whisper needs the transformers package installed") from None
        self._pipe = pipeline("automatic-speech-recognition", model=str(path), device="cpu")
        self.name = f"whisper/{path.name}"

    def transcribe(self, wave_16k: np.ndarray) -> str:
        out = self._pipe(
            {"raw": np.asarray(wave_16k, dtype=np.float32), "sampling_rate": ANALYSIS_SAMPLE_RATE}
        )
        return str(out["text"])


def build_recognizer(spec: str, lm_text: list[str] | None = None) -> Recognizer:
    """``sphinx`` (corpus LM when ``lm_text``), ``sphinx-general`` or ``whisper:/local/path``."""
    if spec == "sphinx":
        return _Sphinx(lm_text)
    if spec == "sphinx-general":
        return _Sphinx(None)
    if spec.startswith("whisper:"):
        return _Whisper(Path(spec.split(":", 1)[1]))
    raise InputError(f"unknown recogniser {spec!r}; use sphinx, sphinx-general or whisper:/path")


def wer_of(references: list[str], hypotheses: list[str]) -> float:
    """Corpus-level WER after normalisation (lowercase, no punctuation)."""
    return word_error_rate(references, hypotheses)
