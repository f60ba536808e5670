"""Reference systems that bracket every model's figures.

* ``ground-truth``: the target speech itself (MCD 0, SPK-SIM ≈ 100: the metrics' ceiling).
* ``copy-synthesis``: the target's mel through Griffin-Lim (the weight-free
  vocoder's ceiling: no mel model with that vocoder can do better).
* ``shuffled``: another speaker's utterance of another script (the floor).
* ``mean-mel``: the training split's average mel frame repeated for the
  target's length, through Griffin-Lim (right duration, no content).

Each writes a folder of ``<clip_id>.wav`` that :func:`dubops.evaluation.runner`
scores like any model's output.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from dubops.config import AudioConfig
from dubops.data.layout import CorpusLayout

BASELINES = ("ground-truth", "copy-synthesis", "shuffled", "mean-mel")
Progress = Callable[[int, int], None]


def _shuffled_partner(clips: pd.DataFrame, pool: pd.DataFrame, index: int) -> pd.Series:
    """A deterministic clip of another speaker with another script."""
    row = clips.iloc[index]
    candidates = pool[(pool["speaker"] != row["speaker"]) & (pool["script"] != row["script"])]
    if candidates.empty:
        raise ValueError("shuffled baseline needs clips of at least two speakers")
    return candidates.iloc[(index * 7919) % len(candidates)]


def mean_mel_frame(layout: CorpusLayout, train: pd.DataFrame, audio: AudioConfig) -> np.ndarray:
    """The average log-mel frame of up to 200 training clips, ``(m,)``."""
    from dubops.audio import MelFrontEnd, read_wav

    front_end = MelFrontEnd(audio)
    total = np.zeros(audio.n_mels)
    count = 0
    for rel in train["audio_path"].head(200):
        wave, _ = read_wav(layout.resolve(rel), audio.sample_rate)
        mel = front_end(wave).numpy()
        total += mel.sum(axis=1)
        count += mel.shape[1]
    if count == 0:
        raise ValueError("mean-mel baseline needs training clips; the manifest has none")
    return (total / count).astype(np.float32)


def write_baseline(
    name: str,
    corpus_root: str | Path,
    clips: pd.DataFrame,
    out_dir: str | Path,
    audio: AudioConfig,
    progress: Progress | None = None,
) -> Path:
    """Write the baseline ``name``'s wav for every clip of ``clips`` into ``out_dir``."""
    from dubops.audio import MelFrontEnd, griffin_lim, read_wav, write_wav

    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {BASELINES}")
    layout = CorpusLayout(Path(corpus_root))
    manifest = pd.read_parquet(layout.manifest)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    front_end = MelFrontEnd(audio)
    mean_frame = None
    if name == "mean-mel":
        mean_frame = mean_mel_frame(layout, manifest[manifest["split"] == "train"], audio)
    for i, row in enumerate(clips.itertuples(index=False)):
        target = out / f"{row.clip_id}.wav"
        source = layout.resolve(row.audio_path)
        if name == "ground-truth":
            shutil.copyfile(source, target)
        elif name == "shuffled":
            partner = _shuffled_partner(clips.reset_index(drop=True), manifest, i)
            shutil.copyfile(layout.resolve(partner["audio_path"]), target)
        else:
            wave, sr = read_wav(source, audio.sample_rate)
            if name == "copy-synthesis":
                mel = front_end(wave).numpy()
            else:
                frames = int(row.mel_frames)
                mel = np.repeat(mean_frame[:, None], frames, axis=1)
            write_wav(target, griffin_lim(mel, audio), sr)
        if progress is not None:
            progress(i + 1, len(clips))
    return out
