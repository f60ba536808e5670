"""Lip sync on filmed faces: MediaPipe face-mesh mouth tracks and SyncNet from a local file.

The face-mesh tests run the real model on a real photograph (matplotlib's Grace
Hopper sample) with a mouth interior painted in; SyncNet runs with random
weights saved here, so only what does not depend on trained weights is tested
(strict loading, shapes, the scoring arithmetic, shift equivariance).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dubops.evaluation.lipsync import av_sync, clip_sync, track_talker_mouth
from dubops.evaluation.syncnet import (
    CROP_SIZE,
    MAX_OFFSET,
    SAMPLE_RATE,
    SyncNet,
    crop_faces,
    distance_curves,
    embed_audio_windows,
    embed_lip_windows,
    load_syncnet,
    mfcc_frames,
    score_clip,
    score_distances,
)
from dubops.speech.mouth import (
    EYE_OUTER_CORNERS,
    LOWER_INNER_LIP,
    NUM_LANDMARKS,
    UPPER_INNER_LIP,
    detect_landmarks,
    face_boxes,
    fill_gaps,
    openings_from_landmarks,
    track_mouth,
)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.asarray(Image.open(path).convert("RGB"))


def _open_mouth(photo: np.ndarray, height: int) -> np.ndarray:
    """The photo with a dark mouth interior ``height`` pixels tall between the lips."""
    import cv2

    frame = photo.copy()
    if height > 0:  # lips meet at about (268, 277) in this 512 x 600 photo
        cv2.ellipse(frame, (268, 277), (24, height // 2), 0, 0, 360, (40, 10, 15), -1)
    return frame


# --------------------------------------------------------------- face mesh


def test_face_mesh_finds_the_face_and_a_closed_mouth(photo):
    landmarks = detect_landmarks(photo[None])
    assert landmarks.shape == (1, NUM_LANDMARKS, 2)
    h, w = photo.shape[:2]
    xy = landmarks[0]
    assert np.isfinite(xy).all() and (xy[:, 0] < w).all() and (xy[:, 1] < h).all()
    left, right = xy[list(EYE_OUTER_CORNERS)]
    assert 80 < np.linalg.norm(left - right) < 250  # eyes of a face filling a third of the width
    assert openings_from_landmarks(landmarks)[0] < 0.02  # she smiles with closed lips


def test_painted_mouth_opening_is_tracked(photo):
    heights = [0, 4, 8, 12, 16, 20, 24]
    track = track_mouth(np.stack([_open_mouth(photo, h) for h in heights]))
    assert track.reason is None and track.detected == 1.0
    assert track.boxes is not None and track.boxes.shape == (len(heights), 4)
    assert np.corrcoef(heights, track.opening)[0, 1] > 0.9
    assert track.opening[-1] > 5 * track.opening[0]


def test_clip_without_a_face_has_no_track_and_says_why():
    frames = np.full((4, 96, 96, 3), 128, dtype=np.uint8)
    track = track_mouth(frames)
    assert track.opening is None and track.boxes is None
    assert "no face" in track.reason and "4 frames" in track.reason
    assert clip_sync(frames, 1, 0, np.zeros(16_000), 16_000, 25, tracker="face-mesh") is None


def test_frames_without_a_face_are_interpolated(photo):
    blank = np.zeros_like(photo)
    frames = np.stack([_open_mouth(photo, 0), blank, _open_mouth(photo, 16), blank])
    track = track_mouth(frames)
    assert track.detected == 0.5
    assert track.opening[1] == pytest.approx((track.opening[0] + track.opening[2]) / 2)
    assert track.opening[3] == track.opening[2]  # the end holds the last value


def _landmarks(gap: float, eye_distance: float, n: int = 1) -> np.ndarray:
    points = np.zeros((n, NUM_LANDMARKS, 2))
    points[:, UPPER_INNER_LIP] = (50, 60)
    points[:, LOWER_INNER_LIP] = (50, 60 + gap)
    points[:, EYE_OUTER_CORNERS[0]] = (50 - eye_distance / 2, 30)
    points[:, EYE_OUTER_CORNERS[1]] = (50 + eye_distance / 2, 30)
    return points


def test_opening_is_normalised_by_the_eye_distance():
    near = openings_from_landmarks(_landmarks(gap=12, eye_distance=120))
    far = openings_from_landmarks(_landmarks(gap=3, eye_distance=30))
    assert near == pytest.approx([0.1]) and far == pytest.approx([0.1])
    assert np.isnan(openings_from_landmarks(np.full((1, NUM_LANDMARKS, 2), np.nan)))[0]
    with pytest.raises(ValueError, match="landmarks"):
        openings_from_landmarks(np.zeros((3, 10, 2)))


def test_fill_gaps_interpolates_and_holds_the_ends():
    filled = fill_gaps(np.array([np.nan, 1.0, np.nan, np.nan, 4.0, np.nan]))
    np.testing.assert_allclose(filled, [1, 1, 2, 3, 4, 4])
    assert fill_gaps(np.full(5, np.nan)) is None
    boxes = face_boxes(np.concatenate([_landmarks(4, 40), np.full((1, NUM_LANDMARKS, 2), np.nan)]))
    np.testing.assert_allclose(boxes[1], boxes[0])
    assert face_boxes(np.full((2, NUM_LANDMARKS, 2), np.nan)) is None


def test_face_mesh_track_finds_the_audio_delay(photo):
    """A 'talking' photo: mouth painted open to a speech-like envelope; the audio
    envelope arrives 3 frames late and the proxy says so."""
    rng = np.random.default_rng(0)
    envelope = np.convolve(rng.random(40) ** 2, np.ones(3) / 3, mode="same")
    heights = np.round(24 * envelope / envelope.max()).astype(int)
    track = track_talker_mouth(
        np.stack([_open_mouth(photo, h) for h in heights]), 1, 0, "face-mesh"
    )
    late = np.concatenate([np.zeros(3), envelope])[: len(envelope)]
    assert av_sync(track.opening, late, max_lag=8).offset_frames == 3


def test_face_mesh_track_times_the_words(photo):
    """Lip alignment on a filmed face: the mouth talks, closes for 8 frames, talks
    again; a prediction that runs both words together gets its pause moved there."""
    from dubops.speech.lip_align import align_to_mouth, mouth_tracks
    from dubops.speech.settings import LipAlignConfig

    heights = [16, 8, 20, 12, 18, 10, 20, 14] + [0] * 8 + [18, 10, 20, 12, 16, 8, 20, 14]
    openings = mouth_tracks(np.stack([_open_mouth(photo, h) for h in heights]), "face-mesh")
    assert openings.shape == (1, len(heights))
    pause = np.array([0, 0, 0, 1, 0, 0, 0, 1], dtype=bool)
    predicted = np.array([10, 10, 10, 0, 10, 10, 10, 30])  # 90 mel frames = 24 video frames
    aligned = align_to_mouth(predicted, pause, openings, LipAlignConfig())
    assert aligned.frames.sum() == 90 and aligned.gain > 0
    assert 20 <= aligned.frames[3] <= 40  # the closed third of the clip (30 frames)
    assert mouth_tracks(np.full((3, 96, 96, 3), 128, np.uint8), "face-mesh") is None


def test_unknown_tracker_and_narration():
    frames = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="unknown mouth tracker"):
        track_talker_mouth(frames, 1, 0, "dlib")
    assert track_talker_mouth(frames, 1, -1, "face-mesh").reason.startswith("narration")


# --------------------------------------------------------------- SyncNet


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = SyncNet()
    for module in model.modules():  # non-trivial batch-norm statistics, as trained weights have
        if isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d | torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model"
    torch.save(model.state_dict(), path)
    return path, model.eval()


def test_syncnet_state_dict_names_match_syncnet_python(weights):
    path, _ = weights
    state = torch.load(path, weights_only=True)
    prefixes = {name.split(".")[0] for name in state}
    assert prefixes == {"netcnnaud", "netfcaud", "netcnnlip", "netfclip"}
    assert state["netcnnlip.0.weight"].shape == (96, 3, 5, 7, 7)
    assert state["netcnnaud.18.weight"].shape == (512, 256, 5, 4)
    assert state["netfclip.3.weight"].shape == (1024, 512)
    assert sum(v.numel() for k, v in state.items() if "num_batches" not in k) > 13_000_000


def test_syncnet_loads_strictly_from_a_local_file(weights, tmp_path):
    path, model = weights
    loaded = load_syncnet(path)
    assert not loaded.training
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)
    # Files from before PyTorch 0.4.1 lack num_batches_tracked: still accepted.
    old = {k: v for k, v in torch.load(path, weights_only=True).items() if "num_batches" not in k}
    torch.save(old, tmp_path / "old.model")
    load_syncnet(tmp_path / "old.model")


def test_syncnet_load_errors_name_the_file(weights, tmp_path):
    with pytest.raises(ValueError, match=r"no SyncNet weights at .*missing\.model"):
        load_syncnet(tmp_path / "missing.model")
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a loadable SyncNet state dict"):
        load_syncnet(garbage)
    state = torch.load(weights[0], weights_only=True)
    state.pop("netfclip.3.bias")
    torch.save(state, tmp_path / "partial.model")
    with pytest.raises(
        ValueError, match=r"(?s)does not match the SyncNet architecture.*netfclip\.3\.bias"
    ):
        load_syncnet(tmp_path / "partial.model")


@pytest.fixture(scope="module")
def clip():
    """20 frames of a face-sized noise patch and 0.8 s of noise-burst 'speech'."""
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (20, 80, 80, 3), dtype=np.uint8)
    boxes = np.tile([20.0, 16.0, 60.0, 56.0], (20, 1))
    wave = (rng.normal(0, 0.1, SAMPLE_RATE * 20 // 25) * np.repeat(rng.random(20), 640)).astype(
        np.float32
    )
    return frames, boxes, wave


def test_syncnet_shapes(weights, clip):
    _, model = weights
    frames, boxes, wave = clip
    crops = crop_faces(frames, boxes)
    assert crops.shape == (20, CROP_SIZE, CROP_SIZE, 3) and crops.dtype == np.uint8
    mfcc = mfcc_frames(wave, SAMPLE_RATE)
    assert mfcc.shape == (13, 4 * 20 - 1)  # 100 Hz, 25 ms windows
    lips = embed_lip_windows(model, crops)
    assert lips.shape == (16, 1024)
    audio = embed_audio_windows(model, mfcc, 15)
    assert audio.shape == (15, 1024)
    assert distance_curves(lips[:15], audio).shape == (15, 2 * MAX_OFFSET + 1)


def test_syncnet_score_matches_embeddings_computed_directly(weights, clip):
    """score_clip's offset and LSE equal a brute-force search on the raw embeddings."""
    _, model = weights
    frames, boxes, wave = clip
    lips = embed_lip_windows(model, crop_faces(frames, boxes))
    score = score_clip(model, lips, len(frames), wave, SAMPLE_RATE)

    count = 15  # min(20 frames, 0.8 s / 40 ms) - 5
    mfcc = torch.from_numpy(mfcc_frames(wave, SAMPLE_RATE)).float()
    with torch.no_grad():
        audio = model.embed_audio(
            torch.stack([mfcc[None, :, 4 * i : 4 * i + 20] for i in range(count)])
        )
    audio = audio.numpy().astype(np.float64)
    mean = []
    for k in range(-MAX_OFFSET, MAX_OFFSET + 1):
        dists = []
        for i in range(count):
            j = i + k
            other = audio[j] if 0 <= j < count else np.zeros(1024)
            dists.append(np.linalg.norm(lips[i] - other + 1e-6))  # torch's pairwise eps
        mean.append(np.mean(dists))
    mean = np.array(mean)
    best = int(np.argmin(mean))
    assert score.offset_frames == best - MAX_OFFSET
    assert score.lse_d == pytest.approx(mean[best], rel=1e-4)
    assert score.lse_c == pytest.approx(np.median(mean) - mean[best], rel=1e-3, abs=1e-4)


def test_delaying_the_audio_shifts_every_distance_curve(weights, clip):
    """Prepending k frames of silence moves each frame's curve by exactly k offsets."""
    _, model = weights
    frames, _, wave = clip
    k = 3
    mfcc = mfcc_frames(wave, SAMPLE_RATE)
    late = mfcc_frames(np.concatenate([np.zeros(640 * k, np.float32), wave]), SAMPLE_RATE)
    lips = embed_lip_windows(model, crop_faces(frames, np.tile([20, 16, 60, 56], (20, 1))))
    on_time = distance_curves(lips[:15], embed_audio_windows(model, mfcc, 15))
    delayed = distance_curves(lips[:15], embed_audio_windows(model, late, 15))
    compared = 0
    for i in range(15):
        for column in range(k, 2 * MAX_OFFSET + 1):
            window = i + column - MAX_OFFSET  # the delayed audio window in this column
            if k <= window < 15:  # past the silence and inside the clip
                assert delayed[i, column] == pytest.approx(on_time[i, column - k], rel=1e-4)
                compared += 1
    assert compared == 15 * (15 - k)


def test_score_distances_arithmetic():
    curve = np.array([5.0, 4.0, 1.0, 4.5, 6.0])  # offsets -2..2
    score = score_distances(np.stack([curve - 0.5, curve + 0.5]))
    assert score.offset_frames == 0 and score.lse_d == 1.0 and score.lse_c == 3.5
