"""What the reasoner sees (key frames + motion image), its prompt, and the corpus parser."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dubops.reasoning.clip_images import (
    ClipImageError,
    clip_images,
    motion_image,
    read_clip_images,
    sample_indices,
)
from dubops.reasoning.parser import Conclusion, ReasoningParseError, parse_answer
from dubops.reasoning.prompts import build_prompt


def test_motion_image_lights_up_only_what_moves():
    frames = np.full((10, 32, 32, 3), 100, dtype=np.uint8)
    frames[::2, 8:12, 20:24] = 200  # a "mouth" that opens every other frame
    motion = motion_image(frames, gain=12.0)
    assert motion.shape == (32, 32, 3)
    assert motion[8:12, 20:24].min() == 255
    assert motion[:8].max() == 0 and motion[:, :20].max() == 0


def test_a_still_clip_has_a_black_motion_image():
    frames = np.random.default_rng(0).integers(0, 255, (1, 16, 16, 3), dtype=np.uint8)
    still = np.repeat(frames, 6, axis=0)
    images = clip_images(still, keyframes=2, motion=True, size=32)
    assert [im.size for im in images] == [(32, 32)] * 3
    assert np.asarray(images[-1]).max() == 0


def test_keyframes_spread_over_the_clip():
    assert sample_indices(100, 4).tolist() == [12, 37, 62, 87]
    assert sample_indices(3, 5).tolist() == [0, 0, 1, 2, 2]
    with pytest.raises(ClipImageError, match="no frames"):
        sample_indices(0, 2)


def test_bad_frames_and_missing_videos_are_clear_errors(tmp_path):
    with pytest.raises(ClipImageError, match=r"\(n, h, w, 3\)"):
        clip_images(np.zeros((4, 8, 8), dtype=np.uint8), 1, True, 32)
    with pytest.raises(ClipImageError, match="does not exist"):
        read_clip_images(tmp_path / "nope.mp4", 1, True, 32)


def test_prompt_has_one_placeholder_per_image_and_the_script():
    prompt = build_prompt("  Hello   there. ", "<image>", 2)
    assert prompt.startswith("<image><image>\n") and "Script: Hello there.\n" in prompt


def test_every_corpus_answer_parses_to_its_labels_and_every_broken_one_fails(
    small_synthetic_corpus,
):
    rows = pd.read_parquet(small_synthetic_corpus / "manifest.parquet")
    reasons = set()
    for row in rows.itertuples():
        truth = Conclusion(row.scene_type, row.gender, row.age, row.emotion)
        assert parse_answer(row.cot) == truth
        for rejected in json.loads(row.rejected):
            if rejected["kind"] == "broken_format":
                with pytest.raises(ReasoningParseError) as err:
                    parse_answer(rejected["text"])
                reasons.add(str(err.value).split(" ")[1])
            elif rejected["kind"] == "wrong_count":  # wrong reasoning, right conclusion
                assert parse_answer(rejected["text"]) == truth
            else:
                assert parse_answer(rejected["text"]) != truth
    assert len(reasons) >= 2  # the messages differ by what is wrong
