"""What the report reads from each clip's video, decoded once for lip-sync and scene.

Two things per clip: the mouth-opening tracks of the characters the manifest
says are on screen (for lip-sync), and the same tracks for the number of
characters counted from the pixels themselves (for the scene-type check, which
must not peek at the manifest's ``num_people``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dubops.data.report.clips import Progress

if TYPE_CHECKING:
    import pandas as pd

    from dubops.data.layout import CorpusLayout

MAX_PEOPLE = 3
# Characters are counted as heads: runs of columns with non-background pixels in the
# band of rows where heads are (bodies may share the wall's colour, décor hangs higher
# up). A lit face can match the wall too, leaving only its outline, eyes and mouth, so
# columns are counted rather than connected regions, bridging gaps up to _MAX_GAP.
HEAD_BAND = (0.3, 0.5)
MIN_HEAD_WIDTH = 0.06  # share of the frame width
_MIN_COLUMN_PIXELS = 2
_MAX_GAP = 3
# Summed absolute RGB difference from the background colour that counts as foreground.
FOREGROUND_DIFF = 60


@dataclass
class ClipVideo:
    """The measured video signals of one clip."""

    fps: float
    mouths: np.ndarray  # (p, n) openings of the manifest's p characters over n frames
    blobs: int  # characters counted from the frames
    blob_mouths: np.ndarray  # (blobs, n) openings assuming that many characters


def count_blobs(frame: np.ndarray) -> int:
    """Characters on screen, counted as heads: runs of head-band columns that differ
    from the background (the commonest border colour), at least MIN_HEAD_WIDTH wide.

    Args:
        frame: ``(h, w, 3)`` uint8.
    """
    from scipy import ndimage

    border = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]])
    colours, counts = np.unique(border // 8, axis=0, return_counts=True)
    background = colours[np.argmax(counts)].astype(int) * 8 + 4
    h = frame.shape[0]
    band = frame[round(HEAD_BAND[0] * h) : round(HEAD_BAND[1] * h)]
    mask = np.abs(band.astype(int) - background).sum(axis=2) > FOREGROUND_DIFF
    occupied = mask.sum(axis=0) >= _MIN_COLUMN_PIXELS
    bridged = ndimage.binary_closing(occupied, np.ones(_MAX_GAP + 1, dtype=bool))
    labels, n = ndimage.label(bridged | occupied)
    if n == 0:
        return 0
    widths = np.bincount(labels)[1:]
    return int((widths >= MIN_HEAD_WIDTH * frame.shape[1]).sum())


def measure_clip_video(frames: np.ndarray, fps: float, num_people: int) -> ClipVideo:
    """Mouth tracks and character count of one decoded clip (``(n, h, w, 3)`` uint8)."""
    from dubops.speech.mouth import measure_mouth_openings

    n = len(frames)
    mouths = measure_mouth_openings(frames, num_people) if num_people > 0 else np.zeros((0, n))
    # The middle frame: characters do not come and go within a clip.
    blobs = min(count_blobs(frames[n // 2]), MAX_PEOPLE) if n else 0
    if blobs == num_people:
        blob_mouths = mouths
    elif blobs > 0:
        blob_mouths = measure_mouth_openings(frames, blobs)
    else:
        blob_mouths = np.zeros((0, n))
    return ClipVideo(float(fps), np.asarray(mouths, float), blobs, np.asarray(blob_mouths, float))


def read_clip_videos(
    layout: CorpusLayout, clips: pd.DataFrame, progress: Progress | None = None
) -> dict[str, ClipVideo]:
    """Decode every clip's video once and measure it."""
    from dubops.video import read_video

    videos: dict[str, ClipVideo] = {}
    for i, row in enumerate(clips.itertuples(index=False)):
        frames, fps = read_video(layout.resolve(row.video_path))
        videos[row.clip_id] = measure_clip_video(frames, fps, int(row.num_people))
        if progress is not None:
            progress("video", i + 1, len(clips))
    return videos
