"""What the reasoner sees of a silent clip: key frames and one motion image.

A handful of still frames shows who is on screen, their faces and the scene's
light, but whether a mouth *moves* is spread across frames, which a small
vision tower trained here reads poorly (DESIGN.md: narration recall 32 % from
frames alone). So the frames sampled across the clip are also summarised in
one motion image, the per-pixel mean absolute difference between
consecutive grey frames over the whole clip: a talking mouth lights up.
Measured on the tiny corpus (99.5th percentile inside each character's box):
talkers 5.9-40, silent characters (whose mouths drift slowly) at most 4.3; the
temporal standard deviation of 8 sampled frames overlapped (talkers from 10,
silent up to 31), because it sees slow drift as much as speech. The same
images go to the tiny and the pretrained models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dubops.errors import DubOpsError


class ClipImageError(DubOpsError, ValueError):
    """A clip's frames cannot be read or have the wrong shape."""


def sample_indices(n_frames: int, count: int) -> np.ndarray:
    """``count`` indices spread evenly over ``n_frames`` (the centres of equal parts)."""
    if n_frames <= 0:
        raise ClipImageError("the clip has no frames")
    return np.minimum(((np.arange(count) + 0.5) * n_frames / count).astype(int), n_frames - 1)


def motion_image(frames: np.ndarray, gain: float) -> np.ndarray:
    """uint8 ``(h, w, 3)``: mean |grey(t+1) - grey(t)| x ``gain``, clipped to 255.

    A fixed gain (not per-clip normalisation) keeps a still clip dark instead of
    stretching its compression noise into fake motion. Made 64 frames at a time, so
    a long clip never has a float copy of all its frames (166 MB for 60 s at 96 px).
    """
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    total = np.zeros(frames.shape[1:3], dtype=np.float64)
    last = None
    for start in range(0, len(frames), 64):
        grey = frames[start : start + 64].astype(np.float32) @ weights
        if last is not None:
            grey = np.concatenate([last[None], grey])
        total += np.abs(np.diff(grey, axis=0)).sum(axis=0)
        last = grey[-1]
    change = total / max(len(frames) - 1, 1)
    spread = np.clip(change * gain, 0, 255).astype(np.uint8)
    return np.repeat(spread[..., None], 3, axis=-1)


def clip_images(
    frames: np.ndarray, keyframes: int, motion: bool, size: int, gain: float = 12.0
) -> list[Image.Image]:
    """Key frames (evenly spaced), then the motion image of every frame when ``motion``.

    Args:
        frames: uint8 ``(n, h, w, 3)`` RGB video frames.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ClipImageError(f"frames must be (n, h, w, 3) RGB, got shape {frames.shape}")
    images = [
        Image.fromarray(frames[i]).resize((size, size), Image.BILINEAR)
        for i in sample_indices(len(frames), keyframes)
    ]
    if motion:
        images.append(Image.fromarray(motion_image(frames, gain)).resize((size, size)))
    return images


def images_per_clip(keyframes: int, motion: bool) -> int:
    return keyframes + int(motion)


def read_clip_images(
    video_path: str | Path, keyframes: int, motion: bool, size: int, gain: float = 12.0
) -> list[Image.Image]:
    """:func:`clip_images` of a video file; a missing or unreadable file is a ClipImageError."""
    from dubops.video import read_video

    path = Path(video_path)
    if not path.is_file():
        raise ClipImageError(f"video {path} does not exist")
    try:
        frames, _ = read_video(path)
    except Exception as exc:
        raise ClipImageError(f"cannot read video {path}: {exc}") from None
    return clip_images(frames, keyframes, motion, size, gain)
