"""Face boxes and crops for the face emotion extractor.

Two detectors whose models ship inside their wheels (nothing is downloaded):

* ``mediapipe``: MediaPipe's short-range BlazeFace graph (legacy
  ``mediapipe.solutions``). On the tiny corpus's cartoon characters (3 frames of
  all 360 clips, 1,587 faces) it found 91.5 % of the faces, no false boxes, and
  a face in 309 of the 313 clips with people, at ~2 ms per 96 px frame.
* ``haar``: OpenCV's ``haarcascade_frontalface_alt2``; on the same cartoons it
  found 42 % of faces at 96 px and 67 % on 4x upscaled frames (set
  ``emotion.face.upscale=4``); the default cascade found 30-55 %.

The graph is built without its options message, as ``dubops.speech.mouth``
does: mediapipe 0.10.21 writes options through a protobuf API gone from
protobuf 7; the graph's own default score threshold (0.5) applies. mediapipe
prints a harmless ``MessageFactory ... GetPrototype`` line to stderr from C++.

Boxes are ``(x0, y0, x1, y1, score)`` in frame pixels.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)
_BLAZEFACE_GRAPH = "mediapipe/modules/face_detection/face_detection_short_range_cpu.binarypb"
_HAAR_CASCADE = "haarcascade_frontalface_alt2.xml"


class FaceDetector:
    """Face boxes in RGB frames, most confident first."""

    def __init__(self, kind: str, upscale: int = 1) -> None:
        if kind not in ("mediapipe", "haar"):
            raise ValueError(f"emotion.face.detector must be mediapipe or haar, got {kind!r}")
        self.kind = kind
        self.upscale = upscale
        self._impl: Any = None
        # A MediaPipe graph is not thread-safe, and a server dubs on several threads (the
        # batcher's and the job workers'): two frames in one graph at once broke it for
        # good ("Graph has errors" on every later frame). One frame at a time per detector.
        self._lock = threading.RLock()

    def _load(self) -> Any:
        if self._impl is not None:
            return self._impl
        if self.kind == "mediapipe":
            from dubops.native_stderr import mediapipe_solution_base, silenced_stderr

            try:
                solution_base = mediapipe_solution_base("face_detection")
            except ImportError as exc:
                raise RuntimeError(
                    f"the mediapipe face detector needs mediapipe 0.10.21 ({exc}); "
                    "install it or use --set emotion.face.detector=haar"
                ) from None

            # The graph prints TF Lite / absl chatter and a protobuf-6 AttributeError
            # on its first frame, straight to fd 2: run that frame here, silenced.
            with silenced_stderr():
                impl = solution_base(binary_graph_path=_BLAZEFACE_GRAPH, outputs=["detections"])
                impl.process({"image": np.zeros((64, 64, 3), np.uint8)})
            self._impl = impl
        else:
            import cv2

            self._impl = cv2.CascadeClassifier(cv2.data.haarcascades + _HAAR_CASCADE)
        return self._impl

    def detect(self, image: np.ndarray) -> list[tuple[float, float, float, float, float]]:
        """Boxes of one uint8 ``(h, w, 3)`` RGB frame."""
        import cv2

        with self._lock:
            impl = self._load()
        h, w = image.shape[:2]
        up = self.upscale
        big = (
            image
            if up == 1
            else cv2.resize(image, (w * up, h * up), interpolation=cv2.INTER_LINEAR)
        )
        boxes: list[tuple[float, float, float, float, float]] = []
        if self.kind == "mediapipe":
            with self._lock:
                result = impl.process({"image": np.ascontiguousarray(big)})
                for det in result.detections or []:
                    b = det.location_data.relative_bounding_box
                    x0, y0 = b.xmin * w, b.ymin * h
                    boxes.append((x0, y0, x0 + b.width * w, y0 + b.height * h, float(det.score[0])))
        else:
            gray = cv2.cvtColor(big, cv2.COLOR_RGB2GRAY)
            found = impl.detectMultiScale(gray, 1.1, 3, minSize=(16, 16))
            for x, y, bw, bh in found:
                boxes.append((x / up, y / up, (x + bw) / up, (y + bh) / up, float(bw * bh)))
        return sorted(boxes, key=lambda b: -b[4])


def crop_faces(
    frames: np.ndarray,
    detector: FaceDetector,
    num_frames: int,
    max_faces: int,
    side: int,
    margin: float,
    oval: bool = True,
) -> np.ndarray:
    """Square face crops from ``num_frames`` frames spread over the clip.

    With ``oval`` the corners outside the crop's inscribed ellipse are set to
    mid-grey, so the crop shows the face and little of the wall behind it (the
    wall's colour is the scene extractor's cue, not the face's).

    Returns:
        uint8 ``(n, side, side, 3)``, ``n`` <= num_frames * max_faces (0 when no face).
    """
    import cv2

    if frames is None or len(frames) == 0:
        raise ValueError("the face extractor needs the clip's video frames")
    h, w = frames.shape[1:3]
    idx = ((np.arange(num_frames) + 0.5) * len(frames) / num_frames).astype(int)
    crops = []
    for i in idx:
        frame = frames[i]
        for x0, y0, x1, y1, _ in detector.detect(frame)[:max_faces]:
            half = max(x1 - x0, y1 - y0) * margin / 2
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            c0, c1 = max(round(cx - half), 0), min(round(cx + half), w)
            r0, r1 = max(round(cy - half), 0), min(round(cy + half), h)
            if c1 - c0 < 4 or r1 - r0 < 4:
                continue
            crops.append(
                cv2.resize(frame[r0:r1, c0:c1], (side, side), interpolation=cv2.INTER_AREA)
            )
    if not crops:
        return np.zeros((0, side, side, 3), dtype=np.uint8)
    out = np.stack(crops)  # (n, side, side, 3)
    if oval:
        grid = (np.arange(side) + 0.5) / side * 2 - 1
        outside = grid[:, None] ** 2 + grid[None, :] ** 2 > 1.0  # (side, side)
        out[:, outside] = 128
    return out
