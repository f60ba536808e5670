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
from dubops.sample_rates import ANALYSIS_SAMPLE_RATE


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


# The limits a request's media must meet (the CLI checks files against the same ones).
# A timbre prompt shorter than this carries too little of the voice to clone it.
MIN_PROMPT_SECONDS = 0.5
# A prompt quieter than this carries no voice (speech sits around -20 to -30 dBFS).
MIN_PROMPT_RMS_DBFS = -50.0
# Below wideband speech the mel bands above 4 kHz are empty: the timbre is lost.
MIN_PROMPT_SAMPLE_RATE = ANALYSIS_SAMPLE_RATE
# The slot fitter's floor is 2 mel frames (21 ms) per phoneme: ~47 phonemes a second.
# English spells a phoneme with ~1.2 letters; 2 letters each leaves a wide margin.
MAX_LETTERS_PER_SECOND = 94


def read_media(request: DubRequest) -> ClipMedia:
    """Decode the request's video and prompt (:class:`InputError` on unreadable or
    unusable media: see :func:`check_media`)."""
    frames, fps = _video(request)
    prompt, rate = _prompt(request)
    media = ClipMedia(frames, fps, prompt, rate)
    check_media(request, media)
    return media


def check_media(request: DubRequest, media: ClipMedia) -> None:
    """Refuse what decodes but cannot be dubbed: a short, silent or narrow-band prompt,
    a script no speaker could say in its slot (each named with the fix)."""
    seconds = len(media.prompt) / media.prompt_rate if media.prompt_rate else 0.0
    if seconds < MIN_PROMPT_SECONDS:
        raise InputError(
            f"prompt: {seconds:.2f} s of audio; give at least {MIN_PROMPT_SECONDS:g} s of the "
            "speaker's voice"
        )
    if media.prompt_rate < MIN_PROMPT_SAMPLE_RATE:
        raise InputError(
            f"prompt: sampled at {media.prompt_rate} Hz; give at least "
            f"{MIN_PROMPT_SAMPLE_RATE} Hz (wideband speech)"
        )
    rms = float(np.sqrt(np.mean(np.square(media.prompt), dtype=np.float64)))
    level = 20 * np.log10(max(rms, 1e-12))
    if not np.isfinite(media.prompt).all() or level < MIN_PROMPT_RMS_DBFS:
        raise InputError(
            f"prompt: silent or nearly so ({level:.0f} dBFS RMS); give a recording of the "
            "speaker's voice"
        )
    slot = request.target_seconds or media.seconds
    letters = sum(c.isalnum() for c in request.script)
    limit = int(MAX_LETTERS_PER_SECOND * slot)
    if letters > limit:
        raise InputError(
            f"script: {letters} letters cannot be spoken in a {slot:.2f} s slot (at most "
            f"~{limit}); shorten the line, or give a longer video or target_seconds"
        )


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
    return decode_video(request.video, request.fps)


def decode_video(
    video: Path | bytes | np.ndarray, fps: float | None = None
) -> tuple[np.ndarray, float]:
    """``(frames, fps)`` of a video given as a path, an mp4's bytes or frames (with ``fps``);
    an unreadable one is an :class:`InputError` naming the ``video`` field."""
    from dubops.errors import DubOpsError
    from dubops.video import read_video

    if isinstance(video, np.ndarray):
        return video, float(fps or 25.0)
    try:
        if isinstance(video, Path):
            return read_video(video)
        with tempfile.TemporaryDirectory(prefix="dubops-video-") as tmp:
            path = Path(tmp) / "video.mp4"
            path.write_bytes(video)
            return read_video(path)
    except DubOpsError as exc:
        # Bytes were written to a private temp file: its path means nothing to the sender.
        message = str(exc) if isinstance(video, Path) else _without_paths(str(exc))
        raise InputError(f"video: {message}; send a readable video (mp4, H.264)") from None


def _without_paths(message: str) -> str:
    import re

    return re.sub(r"/\S*dubops-video-\S*", "the uploaded video", message)


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
