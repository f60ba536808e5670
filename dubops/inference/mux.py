"""The dubbed speech as the silent video's audio track (the video stream is copied)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dubops.errors import InputError
from dubops.inference.request import DubRequest


def mux_to_bytes(request: DubRequest, wave: np.ndarray, sample_rate: int, folder: Path) -> bytes:
    """The request's video with ``wave`` as its AAC track, as mp4 bytes (work in ``folder``)."""
    from dubops.inference.media import video_file

    out = mux_dub(video_file(request, folder), wave, sample_rate, folder / "dub.mp4")
    return out.read_bytes()


def mux_dub(
    video_path: str | Path, wave: np.ndarray, sample_rate: int, out_path: str | Path
) -> Path:
    """The silent video with the dubbed speech as its AAC track, written atomically.

    The video stream is copied, not re-encoded (:func:`dubops.video.mux_audio`);
    the wav goes beside the mp4 (``<out>.wav``), which is also what is muxed.
    """
    from dubops.audio import write_wav
    from dubops.video import mux_audio

    out = Path(out_path)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"--out {out}: the dubbed video must be an .mp4 file")
    wav = out.with_suffix(".wav")
    write_wav(wav, wave, sample_rate)
    mux_audio(video_path, wav, out)
    return out
