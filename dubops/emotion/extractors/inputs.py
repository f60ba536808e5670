"""Read a manifest row's media into :class:`ClipInputs` (each clip decoded once)."""

from __future__ import annotations

from typing import Any

from dubops.data.layout import CorpusLayout
from dubops.emotion.extractors.base import ClipInputs


def load_clip_inputs(
    layout: CorpusLayout,
    row: Any,
    sample_rate: int,
    video: bool = True,
    audio: bool = True,
) -> ClipInputs:
    """Decode one clip's video, target speech and timbre prompt.

    Args:
        layout: the corpus folder.
        row: a manifest row (``clip_id``, ``script``, ``react``, ``video_path``,
            ``audio_path``, ``prompt_audio_path``).
        sample_rate: waves are resampled to this.
        video: decode the frames (scene, face).
        audio: read the target speech and the prompt (audio).
    """
    from dubops.audio import read_wav
    from dubops.video import read_video

    frames = wave = prompt = None
    if video:
        frames, _ = read_video(layout.resolve(row["video_path"]))
    if audio:
        wave, _ = read_wav(layout.resolve(row["audio_path"]), sample_rate)
        prompt, _ = read_wav(layout.resolve(row["prompt_audio_path"]), sample_rate)
    return ClipInputs(
        clip_id=str(row["clip_id"]),
        frames=frames,
        script=str(row["script"]),
        react=str(row["react"]),
        wave=wave,
        prompt_wave=prompt,
        sample_rate=sample_rate,
    )
