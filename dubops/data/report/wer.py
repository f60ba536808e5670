"""Intelligibility: PocketSphinx word error rate of the corpus speech.

PocketSphinx ships its English model, so this runs offline. Two tricks from
DESIGN.md ("Known facts"): pad 0.2 s of silence on each side and add faint
white noise, because its feature normalisation stumbles on exact digital
silence; and, optionally, restrict it to the corpus language with a bigram
LM over the training text (:mod:`corpus_lm`; WER ≈ 0.26 on espeak ground truth,
against ≈ 0.62 with its general language model). Only the comparison between
corpora or models is meaningful, not the absolute figure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dubops.data.report.clips import REPORT_SAMPLE_RATE, Progress, is_held_out

if TYPE_CHECKING:
    import pandas as pd

    from dubops.config.models import ReportConfig

PAD_SECONDS = 0.2
NOISE_STD = 3e-3
_WORD = re.compile(r"[a-z']+")


def normalise_text(text: str) -> str:
    """Lowercase words without punctuation (apostrophes dropped, as jiwer does)."""
    return " ".join(w.replace("'", "") for w in _WORD.findall(text.lower()))


def vocabulary(texts: Iterable[str]) -> list[str]:
    """Sorted distinct lowercase words (apostrophes kept: CMUdict spells ``don't``)."""
    return sorted({w.strip("'") for t in texts for w in _WORD.findall(t.lower())} - {""})


def prepare_for_asr(wave: np.ndarray, seed: int = 0) -> bytes:
    """16 kHz float wave -> padded, faintly noisy 16-bit PCM bytes."""
    pad = np.zeros(int(PAD_SECONDS * REPORT_SAMPLE_RATE), dtype=np.float32)
    x = np.concatenate([pad, np.asarray(wave, dtype=np.float32), pad])
    x = x + np.random.default_rng(seed).normal(0.0, NOISE_STD, len(x)).astype(np.float32)
    return (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16).tobytes()


class SphinxRecognizer:
    """PocketSphinx with its English model, optionally limited to the corpus language."""

    def __init__(self, sentences: Sequence[str] | None = None) -> None:
        import tempfile

        from pocketsphinx import Decoder

        from dubops.data.report.corpus_lm import write_bigram_arpa

        self.mode = "general-lm"
        self.out_of_vocabulary: list[str] = []
        if not sentences:
            self.decoder = Decoder(samprate=REPORT_SAMPLE_RATE, loglevel="FATAL")
            return
        probe = Decoder(samprate=REPORT_SAMPLE_RATE, loglevel="FATAL")
        normalised = [normalise_text(s) for s in sentences]
        words = vocabulary(normalised)
        self.out_of_vocabulary = [w for w in words if probe.lookup_word(w) is None]
        unknown = set(self.out_of_vocabulary)
        kept = [" ".join(w for w in s.split() if w not in unknown) for s in normalised]
        with tempfile.TemporaryDirectory() as tmp:
            arpa = write_bigram_arpa([s for s in kept if s], Path(tmp) / "corpus.arpa")
            self.decoder = Decoder(samprate=REPORT_SAMPLE_RATE, lm=str(arpa), loglevel="FATAL")
        self.mode = "corpus-lm"

    def transcribe(self, wave: np.ndarray, seed: int = 0) -> str:
        """Words heard in a 16 kHz mono float wave."""
        self.decoder.start_utt()
        self.decoder.process_raw(prepare_for_asr(wave, seed), full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus-level WER after lowercasing and stripping punctuation."""
    import jiwer

    refs = [normalise_text(r) for r in references]
    hyps = [normalise_text(h) for h in hypotheses]
    keep = [i for i, r in enumerate(refs) if r]
    return float(jiwer.wer([refs[i] for i in keep], [hyps[i] for i in keep]))


def pick_wer_clips(clips: pd.DataFrame, count: int) -> pd.DataFrame:
    """The first ``count`` held-out clips (``clips`` is already in a stable order),
    topped up with train clips when there are too few."""
    held = clips[clips["split"].map(is_held_out)]
    rest = clips[~clips["split"].map(is_held_out)]
    return clips.loc[list(held.index[:count]) + list(rest.index[: max(0, count - len(held))])]


def measure_wer(
    clips: pd.DataFrame,
    waves: dict[str, np.ndarray],
    config: ReportConfig,
    corpus_texts: Iterable[str],
    progress: Progress | None = None,
) -> dict:
    """WER of PocketSphinx on ``config.wer_clips`` held-out clips.

    Args:
        corpus_texts: the text the corpus LM learns from (the training clips'
            scripts, react lines and prompts; never the clips being decoded).
    """
    chosen = pick_wer_clips(clips, config.wer_clips)
    if len(chosen) == 0:
        return {"wer": None, "mode": None, "clips": 0}
    recognizer = SphinxRecognizer(list(corpus_texts) if config.wer_corpus_lm else None)
    hypotheses = []
    for i, row in enumerate(chosen.itertuples(index=False)):
        hypotheses.append(recognizer.transcribe(waves[row.clip_id], seed=i))
        if progress is not None:
            progress("wer", i + 1, len(chosen))
    references = list(chosen["script"])
    return {
        "wer": word_error_rate(references, hypotheses),
        "mode": recognizer.mode,
        "clips": len(chosen),
        "out_of_vocabulary": recognizer.out_of_vocabulary[:20],
        "examples": [
            {"ref": r, "hyp": h} for r, h in zip(references[:3], hypotheses[:3], strict=True)
        ],
    }
