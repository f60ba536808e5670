"""The Reference Footage Library's vectors: every clip's scene, face, text and audio emotion.

This is the contract the library build (``feature_store/``) and the graph stage
code against: :func:`load_extractors`, :func:`extractor_versions` and
:func:`extract_footage_vectors`, whose DataFrame has one row per clip and one
column of unit float32 ``(dim,)`` vectors per modality.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dubops.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from dubops.config import DubOpsConfig
    from dubops.emotion.extractors.base import EmotionExtractor, TrainedExtractor

logger = logging.getLogger(__name__)

MODALITIES: tuple[str, ...] = ("scene", "face", "text", "audio")
# Manifest columns carried into the vectors table unchanged.
ID_COLUMNS: tuple[str, ...] = ("clip_id", "split", "speaker", "emotion", "audio_path")
SUMMARY_NAME = "extractors.json"


def extractor_class(name: str) -> type[TrainedExtractor]:
    """The extractor class of one modality (imports torch)."""
    if name == "scene":
        from dubops.emotion.extractors.scene import SceneExtractor

        return SceneExtractor
    if name == "face":
        from dubops.emotion.extractors.face import FaceExtractor

        return FaceExtractor
    if name == "text":
        from dubops.emotion.extractors.text import TextExtractor

        return TextExtractor
    if name == "audio":
        from dubops.emotion.extractors.audio import AudioExtractor

        return AudioExtractor
    raise ValueError(f"unknown emotion modality {name!r}; choose one of {MODALITIES}")


def _check_dir(extractors_dir: str | Path) -> Path:
    folder = Path(extractors_dir)
    if not folder.is_dir():
        raise InputError(
            f"no trained emotion extractors at {folder}; run "
            f"`dubops train extractors --out {folder}` first"
        )
    return folder


def load_extractors(extractors_dir: str | Path) -> dict[str, EmotionExtractor]:
    """The four trained extractors in ``extractors_dir``, keyed by modality.

    Raises:
        FileNotFoundError: the folder or one extractor's files are missing (the
            message names ``dubops train extractors``).
    """
    folder = _check_dir(extractors_dir)
    return {name: extractor_class(name).load(folder) for name in MODALITIES}


def extractor_versions(extractors_dir: str | Path) -> dict[str, str]:
    """Each modality's version, hashed from its weight file and settings (no torch import)."""
    import json

    from dubops.emotion.extractors.base import content_version, files_of

    folder = _check_dir(extractors_dir)
    versions = {}
    for name in MODALITIES:
        weights, meta = files_of(folder, name)
        settings = json.loads(meta.read_text())["settings"]
        versions[name] = content_version(weights.read_bytes(), settings)
    return versions


def extract_footage_vectors(
    config: DubOpsConfig,
    data_dir: str | Path,
    extractors_dir: str | Path,
    splits: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Embed every clip of the corpus with the four extractors.

    Args:
        config: the whole config (``emotion.batch_size``, ``audio.sample_rate``).
        data_dir: the corpus folder.
        extractors_dir: the output of ``dubops train extractors``.
        splits: manifest splits to embed (all when None).
        progress: ``progress(done, total)`` in clips.

    Returns:
        One row per clip: ``clip_id, split, speaker, emotion, audio_path`` as in
        the manifest, and ``scene, face, text, audio``, each cell a unit float32
        NumPy array of shape ``(dim,)``.
    """
    from dubops.data.datasets import load_manifest
    from dubops.data.layout import CorpusLayout
    from dubops.emotion.extractors.inputs import load_clip_inputs

    extractors = load_extractors(extractors_dir)
    manifest = load_manifest(data_dir, splits)
    layout = CorpusLayout(Path(data_dir))
    table = manifest[list(ID_COLUMNS)].copy()
    columns: dict[str, list] = {name: [] for name in MODALITIES}
    total, size = len(manifest), config.emotion.batch_size
    for start in range(0, total, size):
        rows = manifest.iloc[start : start + size]
        batch = [
            load_clip_inputs(layout, row, config.audio.sample_rate) for _, row in rows.iterrows()
        ]
        for name, extractor in extractors.items():
            columns[name].extend(extractor.embed(batch))
        if progress is not None:
            progress(min(start + size, total), total)
    for name in MODALITIES:
        table[name] = columns[name]
    logger.info("embedded %d clips with extractors %s", total, extractor_versions(extractors_dir))
    return table
