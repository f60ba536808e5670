"""Mouth opening per frame of filmed (non-cartoon) faces, from MediaPipe Face Mesh.

The legacy ``mediapipe.solutions`` face mesh ships its face detector and its
468-point landmark model inside the wheel, so nothing is downloaded; mediapipe
0.10.21 is the last release that has it (``requirements/nodeps-eval.txt``).

Opening = gap between the inner-lip midpoints (landmarks 13 and 14) divided by
the distance between the outer eye corners (33 and 263). The eye distance sets
the face's scale because it does not move with speech; the mouth width
(78 / 308) would, with rounding and smiles. The ratio is therefore the same for
a face filmed close or far. Frames without a face are NaN and interpolated over;
a clip without any face gets no track, and the reason why.

Shapes: ``n`` frames, ``k`` landmarks (468).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import numpy as np

from dubops.evaluation.lipsync import MouthTrack

logger = logging.getLogger(__name__)
UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
EYE_OUTER_CORNERS = (33, 263)
NUM_LANDMARKS = 468
# The face mesh graph of mediapipe.solutions.face_mesh.FaceMesh, inside the wheel.
_GRAPH = "mediapipe/modules/face_landmark/face_landmark_front_cpu.binarypb"


def _face_mesh_graph() -> Any:
    """A video-mode face mesh for one face (tracks landmarks from frame to frame).

    ``FaceMesh`` passes its two 0.5 confidence thresholds as calculator options,
    which mediapipe 0.10.21 writes through protobuf's ``FieldDescriptor.label``,
    gone from the protobuf 7 this project installs. The graph's own defaults are
    the same 0.5 thresholds, so the graph is built without them.
    """
    try:
        # Registers the calculator option types that the graph's config names.
        import mediapipe.python.solutions.face_mesh  # noqa: F401
        from mediapipe.python.solution_base import SolutionBase
    except ImportError as exc:
        raise RuntimeError(
            f"face-mesh mouth tracking needs mediapipe 0.10.21 ({exc}); "
            "pip install --no-deps -r requirements/nodeps-eval.txt"
        ) from None
    return SolutionBase(
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
