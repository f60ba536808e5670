"""A request's media decoded: the clip's frames and rate, the prompt's samples and rate.

Paths are read where they are; bytes are decoded from memory (the prompt) or
from a private temp file (the video: the container library reads files), so a
server never needs a shared folder. Unreadable media is an :class:`InputError`
naming the field.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dubops.errors import InputError
from dubops.inference.request import DubRequest


@dataclass
class ClipMedia:
    """Decoded inputs of one request."""

    frames: np.ndarray  # (f, h, w, 3) uint8 RGB
    fps: float
    prompt: np.ndarray  # (t,) float32
    prompt_rate: int

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.fps


def read_media(request: DubRequest) -> ClipMedia:
    """Decode the request's video and prompt (:class:`InputError` on unreadable media)."""
    frames, fps = _video(request)
    prompt, rate = _prompt(request)
    return ClipMedia(frames, fps, prompt, rate)


def video_file(request: DubRequest, folder: Path) -> Path:
    """The request's video as a file (bytes are written into ``folder``), e.g. for muxing."""
    if isinstance(request.video, Path):
        return request.video
    if isinstance(request.video, bytes):
        path = folder / f"{request.name}.mp4"
        path.write_bytes(request.video)
        return path
    raise InputError("mp4: a video given as frames cannot be muxed; send the mp4's path or bytes")


def _video(request: DubRequest) -> tuple[np.ndarray, float]:
    from dubops.errors import DubOpsError
    from dubops.video import read_video

    if isinstance(request.video, np.ndarray):
        return request.video, float(request.fps or 25.0)
    try:
        if isinstance(request.video, Path):
            return read_video(request.video)
        with tempfile.TemporaryDirectory(prefix="dubops-video-") as tmp:
            return read_video(video_file(request, Path(tmp)))
    except DubOpsError as exc:
        raise InputError(f"video: {exc}; send a readable video (mp4, H.264)") from None


def _prompt(request: DubRequest) -> tuple[np.ndarray, int]:
    import soundfile as sf

    if isinstance(request.prompt, np.ndarray):
        return np.asarray(request.prompt), int(request.prompt_rate or 0)
    source = request.prompt if isinstance(request.prompt, Path) else io.BytesIO(request.prompt)
    try:
        wave, rate = sf.read(source, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises its own LibsndfileError
        raise InputError(f"prompt: cannot read it as audio ({exc}); send a wav file") from None
    return wave.mean(axis=1).astype(np.float32), int(rate)
