"""Mouth opening per video frame: the drawn cartoon mouths and filmed faces.

Why in the speech package: the speech generator reads the talker's mouth at
inference to place the predicted words (:func:`dubops.speech.lip_align.mouth_tracks`),
and inference must not import the corpus renderer (:mod:`dubops.data.cartoon`)
or the evaluation package. Both of those import from here instead: the renderer
takes the slot layout and the mouth size it draws to, so drawing and measuring
cannot drift apart, and the lip-sync metrics (:mod:`dubops.evaluation.lipsync`)
score the same tracks the generator aligns to.

Two trackers:

* ``cartoon`` (:func:`measure_mouth_openings`): the synthetic corpus's drawn
  mouths, read back as the darkness inside a window below each character slot.
* ``face-mesh`` (:func:`track_mouth`): MediaPipe Face Mesh landmarks on filmed
  faces. The legacy ``mediapipe.solutions`` face mesh ships its face detector and
  its 468-point landmark model inside the wheel, so nothing is downloaded;
  mediapipe 0.10.21 is the last release that has it (``requirements/nodeps-eval.txt``).
  Opening = gap between the inner-lip midpoints (landmarks 13 and 14) divided by
  the distance between the outer eye corners (33 and 263). The eye distance sets
  the face's scale because it does not move with speech; the mouth width
  (78 / 308) would, with rounding and smiles. The ratio is therefore the same for
  a face filmed close or far. Frames without a face are NaN and interpolated
  over; a clip without any face gets no track, and the reason why.

Shapes: ``n`` frames, ``k`` landmarks (468), ``p`` character slots. Cartoon
coordinates are frame pixels ``(x, y)``, y down; ``r`` is a slot's adult head radius.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from dubops.data.schema import MAX_PEOPLE

logger = logging.getLogger(__name__)

# Drawn mouth size in units of r (dubops.data.cartoon draws to these): closed-line
# half-height and the full jaw drop.
MOUTH_CLOSED = 0.05
JAW_DROP = 0.36
# Measurement: relative to the face's luma L (the window's median), pixels at or
# below _DARK_LO * L count fully as mouth interior, fading linearly to zero at
# _DARK_HI * L, a range that spans interior (<= 0.2 L) to lips (>= 0.75 L) so a
# pixel's darkness is linear in how much of it the interior covers.
_DARK_LO, _DARK_HI = 0.2, 0.72
_WINDOW_Y, _WINDOW_RX, _WINDOW_RY = 0.5, 0.56, 0.38
# Half-width of the neutral mouth in units of r: sets the unit of the cartoon track.
_NEUTRAL_HALF_WIDTH = 0.3

UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
EYE_OUTER_CORNERS = (33, 263)
NUM_LANDMARKS = 468
# The face mesh graph of mediapipe.solutions.face_mesh.FaceMesh, inside the wheel.
_GRAPH = "mediapipe/modules/face_landmark/face_landmark_front_cpu.binarypb"


@dataclass(frozen=True)
class MouthTrack:
    """The talker's mouth over a clip, or why there is none."""

    opening: np.ndarray | None  # (n,) opening per video frame; None: nothing to score
    boxes: np.ndarray | None  # (n, 4) talker's face box x0, y0, x1, y1 in pixels
    reason: str | None = None  # why ``opening`` is None
    detected: float = 1.0  # share of frames where the face was found (the rest interpolated)


@dataclass(frozen=True)
class Slot:
    """Where a cartoon character stands: head centre and adult head radius."""

    cx: float
    cy: float
    r: float

    @classmethod
    def from_box(cls, box: tuple[int, int, int, int], size: int) -> Slot:
        x0, _, x1, _ = box
        return cls((x0 + x1) / 2, 0.38 * size, 0.34 * (x1 - x0))


def character_boxes(num_people: int, size: int) -> list[tuple[int, int, int, int]]:
    """Deterministic bounding box (x0, y0, x1, y1) of each character slot in a size x size frame.

    Slots split the width evenly; a lone character gets a centred half-width slot
    so it is drawn at the same scale as one of two.
    """
    if not 0 <= num_people <= MAX_PEOPLE:
        raise ValueError(f"num_people must be in 0..{MAX_PEOPLE}, got {num_people}")
    if num_people == 0:
        return []
    width = size / max(num_people, 2)
    left = (size - width * num_people) / 2
    y0 = round(0.38 * size - 1.5 * 0.34 * width)
    return [
        (round(left + i * width), max(y0, 0), round(left + (i + 1) * width), size)
        for i in range(num_people)
    ]


def measure_mouth_openings(frames: np.ndarray, num_people: int) -> np.ndarray:
    """Read the mouth opening of each character back from the drawn frames.

    Sums the darkness (soft luma threshold) of the mouth interior inside an
    elliptic window below each slot's head centre; works on frames decoded from
    the lossy h264 mp4. The unit is roughly the area of a fully open neutral
    mouth: a closed mouth reads about 0.2-0.4 (its line and lips), a wide-open one ~1.
    The window's darkness ramp is relative to the face's own luma, so lighting
    and skin tone do not change the scale much; compare tracks by correlation.

    Args:
        frames: uint8 ``(n, h, w, 3)`` RGB, square.
        num_people: characters on screen (sets the slots).

    Returns:
        ``(num_people, n)`` float.
    """
    frames = np.asarray(frames)
    n, size = frames.shape[0], frames.shape[2]
    out = np.zeros((num_people, n), dtype=np.float64)
    for i, box in enumerate(character_boxes(num_people, size)):
        slot = Slot.from_box(box, size)
        r = slot.r
        cy = slot.cy + _WINDOW_Y * r
        y0, y1 = int(cy - _WINDOW_RY * r), int(np.ceil(cy + _WINDOW_RY * r)) + 1
        x0, x1 = int(slot.cx - _WINDOW_RX * r), int(np.ceil(slot.cx + _WINDOW_RX * r)) + 1
        y0, x0, y1, x1 = max(y0, 0), max(x0, 0), min(y1, frames.shape[1]), min(x1, size)
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        xs = np.arange(x0, x1, dtype=np.float32)[None, :]
        weight = ((xs - slot.cx) / (_WINDOW_RX * r)) ** 2 + ((ys - cy) / (_WINDOW_RY * r)) ** 2
        weight = (weight <= 1.0).astype(np.float32)  # (wh, ww)
        patch = frames[:, y0:y1, x0:x1].astype(np.float32)  # (n, wh, ww, 3)
        luma = patch @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        face = float(np.median(luma[:, weight > 0]))
        dark = np.clip((_DARK_HI * face - luma) / ((_DARK_HI - _DARK_LO) * face), 0.0, 1.0)
        full_open = np.pi * _NEUTRAL_HALF_WIDTH * (MOUTH_CLOSED + JAW_DROP / 2) * r * r
        out[i] = (dark * weight).sum(axis=(1, 2)) / full_open
    return out


def _face_mesh_graph() -> Any:
    """A video-mode face mesh for one face (tracks landmarks from frame to frame).

    ``FaceMesh`` passes its two 0.5 confidence thresholds as calculator options,
    which mediapipe 0.10.21 writes through protobuf's ``FieldDescriptor.label``,
    gone from the protobuf 7 this project installs. The graph's own defaults are
    the same 0.5 thresholds, so the graph is built without them.
    """
    from dubops.native_stderr import mediapipe_solution_base

    try:
        solution_base = mediapipe_solution_base("face_mesh")
    except ImportError as exc:
        raise RuntimeError(
            f"face-mesh mouth tracking needs mediapipe 0.10.21 ({exc}); "
            "pip install --no-deps -r requirements/nodeps-eval.txt"
        ) from None
    return solution_base(
        binary_graph_path=_GRAPH,
        side_inputs={"num_faces": 1, "with_attention": False, "use_prev_landmarks": True},
        outputs=["multi_face_landmarks"],
    )


def detect_landmarks(frames: np.ndarray) -> np.ndarray:
    """Face mesh landmarks of the most prominent face in each frame.

    Args:
        frames: uint8 ``(n, h, w, 3)`` RGB frames of one clip (consecutive: the
            mesh is tracked from one frame to the next).

    Returns:
        ``(n, k, 2)`` float64 pixel ``(x, y)``; NaN rows where no face was found.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 (n, h, w, 3) RGB, got {frames.dtype} {frames.shape}")
    n, h, w = frames.shape[:3]
    out = np.full((n, NUM_LANDMARKS, 2), np.nan)
    from dubops.native_stderr import silenced_stderr

    # The graph prints TF Lite / absl chatter and a protobuf-6 AttributeError on its
    # first frame, straight to fd 2 (not through logging): silence that one frame.
    with silenced_stderr():
        graph = _face_mesh_graph()
    try:
        for i, frame in enumerate(frames):
            with silenced_stderr() if i == 0 else contextlib.nullcontext():
                faces = graph.process(np.ascontiguousarray(frame)).multi_face_landmarks
            if faces:
                points = faces[0].landmark
                out[i] = [(p.x * w, p.y * h) for p in points[:NUM_LANDMARKS]]
    finally:
        graph.close()
    return out


def openings_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap over outer-eye-corner distance per frame.

    Args:
        landmarks: ``(n, k, 2)`` pixel coordinates (NaN rows: no face).

    Returns:
        ``(n,)``; NaN where the frame has no face.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[1] < NUM_LANDMARKS or landmarks.shape[2] < 2:
        raise ValueError(f"expected (n, {NUM_LANDMARKS}, 2) landmarks, got {landmarks.shape}")
    xy = landmarks[..., :2]
    gap = np.linalg.norm(xy[:, UPPER_INNER_LIP] - xy[:, LOWER_INNER_LIP], axis=-1)
    left, right = EYE_OUTER_CORNERS
    scale = np.linalg.norm(xy[:, left] - xy[:, right], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, gap / scale, np.nan)


def fill_gaps(track: np.ndarray) -> np.ndarray | None:
    """Linear interpolation over NaN frames; the ends hold the nearest value.

    Returns:
        The filled ``(n,)`` track, or None when every frame is NaN.
    """
    track = np.asarray(track, dtype=np.float64)
    known = np.isfinite(track)
    if not known.any():
        return None
    frames = np.arange(len(track))
    return np.interp(frames, frames[known], track[known])


def face_boxes(landmarks: np.ndarray) -> np.ndarray | None:
    """``(n, 4)`` face box ``(x0, y0, x1, y1)`` per frame from the landmarks' extent,
    gaps interpolated like the track; None when no frame has a face."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        boxes = np.concatenate([landmarks.min(axis=1), landmarks.max(axis=1)], axis=1)
    columns = [fill_gaps(boxes[:, j]) for j in range(4)]
    if columns[0] is None:
        return None
    return np.stack(columns, axis=1)


def track_mouth(frames: np.ndarray) -> MouthTrack:
    """Mouth opening and face box per frame of a filmed clip.

    Returns:
        A :class:`MouthTrack`; its ``opening`` is None (with ``reason``) when no
        frame of the clip shows a face.
    """
    landmarks = detect_landmarks(frames)
    found = np.isfinite(landmarks[:, 0, 0])
    opening = fill_gaps(openings_from_landmarks(landmarks))
    if opening is None:
        return MouthTrack(
            None, None, f"face mesh found no face in any of {len(frames)} frames", detected=0.0
        )
    if not found.all():
        logger.debug("face mesh: no face in %d of %d frames", (~found).sum(), len(found))
    return MouthTrack(opening, face_boxes(landmarks), None, detected=float(found.mean()))
