"""Long videos are read a few frames at a time, with the results of all at once."""

from __future__ import annotations

import numpy as np
import torch

from dubops.reasoning.clip_images import motion_image
from dubops.speech.conditioning import FrameEncoder


def test_the_motion_image_in_chunks_is_the_one_of_all_frames_at_once():
    rng = np.random.default_rng(0)
    frames = (rng.integers(0, 255, (150, 24, 24, 3), dtype=np.uint8) // 16 + 100).astype(np.uint8)
    grey = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    change = np.abs(np.diff(grey, axis=0)).mean(axis=0)
    expected = np.clip(change * 12.0, 0, 255).astype(np.uint8)
    assert np.array_equal(motion_image(frames, 12.0)[..., 0], expected)
    assert not motion_image(frames[:1], 12.0).any()  # one frame: no motion


def test_the_frame_encoder_at_inference_encodes_in_chunks_with_the_same_features():
    torch.manual_seed(0)
    encoder = FrameEncoder(32).eval()
    encoder.inference_chunk = 7
    frames = torch.randint(0, 255, (2, 20, 3, 24, 24), dtype=torch.uint8)
    with torch.no_grad():
        chunked = encoder(frames)
    whole = encoder(frames).detach()  # grad enabled: one call
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)
