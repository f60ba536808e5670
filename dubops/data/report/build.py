"""Run every learnability measurement on a corpus folder and gather one JSON-able dict."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from dubops.data.report.clips import Progress, load_waves, select_clips

if TYPE_CHECKING:
    from dubops.config.models import ReportConfig

logger = logging.getLogger(__name__)


def build_report(root: Path, config: ReportConfig, progress: Progress | None = None) -> dict:
    """Measure how learnable a corpus is: speakers, emotion, lip-sync, scene type, ASR.

    Args:
        root: the corpus folder (``manifest.parquet`` and media, see
            :mod:`dubops.data.layout`).
        config: which clips and how many go to each part.
        progress: optional ``(stage, done, total)`` callback for a progress bar.

    Returns:
        Headline figures at the top level (``speaker_id_accuracy``,
        ``emotion_prosody_accuracy`` and its ``_unnormalised`` twin,
        ``mouth_env_corr_talkers``/``_silent``, ``scene_type_accuracy``,
        ``wer``/``wer_mode``), the details of each part under ``details`` and
        wall-clock ``seconds`` per part.
    """
    import pandas as pd

    from dubops.data.layout import CorpusLayout
    from dubops.data.report.corpus_lm import training_text
    from dubops.data.report.frames import read_clip_videos
    from dubops.data.report.lipsync import measure_lipsync
    from dubops.data.report.prosody import measure_emotion_prosody
    from dubops.data.report.scene import measure_scene_type
    from dubops.data.report.speakers import measure_speaker_id
    from dubops.data.report.wer import measure_wer

    layout = CorpusLayout(Path(root))
    if not layout.manifest.exists():
        raise ValueError(f"no corpus at {root}: {layout.manifest.name} is missing")
    manifest = pd.read_parquet(layout.manifest)
    clips = select_clips(manifest, config.max_clips)
    seconds: dict[str, float] = {}
    details: dict[str, dict] = {}

    def timed(name: str, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        seconds[name] = round(time.perf_counter() - start, 2)
        logger.info("report part %s took %.1f s", name, seconds[name])
        return out

    waves = timed("load_audio", load_waves, layout, clips, progress)
    details["speakers"] = timed("speakers", measure_speaker_id, clips, waves, progress)
    details["prosody"] = timed("prosody", measure_emotion_prosody, clips, waves, progress)
    videos = timed("video", read_clip_videos, layout, clips, progress)
    details["lipsync"] = timed("lipsync", measure_lipsync, clips, waves, videos)
    details["scene"] = timed("scene", measure_scene_type, clips, videos)
    details["wer"] = timed(
        "wer",
        measure_wer,
        clips,
        waves,
        config,
        training_text(manifest),
        progress,
    )
    seconds["total"] = round(sum(seconds.values()), 2)
    return {
        "corpus": str(root),
        "corpus_clips": len(manifest),
        "clips": len(clips),
        "splits": {k: int(v) for k, v in clips["split"].value_counts().items()},
        "speaker_id_accuracy": details["speakers"]["accuracy"],
        "emotion_prosody_accuracy": details["prosody"]["accuracy"],
        "emotion_prosody_accuracy_unnormalised": details["prosody"]["accuracy_unnormalised"],
        "emotion_prosody_method": details["prosody"]["method"],
        "mouth_env_corr_talkers": details["lipsync"]["talkers"],
        "mouth_env_corr_silent": details["lipsync"]["silent"],
        "scene_type_accuracy": details["scene"]["accuracy"],
        "scene_type_method": details["scene"]["method"],
        "people_count_accuracy": details["scene"]["people_count_accuracy"],
        "wer": details["wer"]["wer"],
        "wer_mode": details["wer"]["mode"],
        "wer_clips": details["wer"]["clips"],
        "seconds": seconds,
        "details": details,
    }
