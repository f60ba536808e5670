"""The cartoon renderer: shapes, determinism, measurable lip-sync, visible labels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dubops.data.cartoon import Character, render_clip
from dubops.data.schema import AGES, EMOTIONS, GENDERS, MAX_PEOPLE
from dubops.speech.mouth import character_boxes, measure_mouth_openings
from dubops.video import read_video, write_video

SIZE = 96
FPS = 25


def _envelope(n: int, seed: int) -> np.ndarray:
    """A random smooth speech-like envelope in [0, 1]."""
    raw = np.convolve(np.random.default_rng(seed).random(n + 6), np.ones(7) / 7, "valid")
    return (raw - raw.min()) / (raw.max() - raw.min())


def _through_mp4(frames: np.ndarray, tmp_path) -> np.ndarray:
    path = tmp_path / "clip.mp4"
    write_video(path, frames, FPS, crf=18)
    decoded, _ = read_video(path)
    return decoded


@pytest.mark.parametrize("people", range(MAX_PEOPLE + 1))
def test_shapes_and_dtype(people):
    chars = [Character("female", "adult", "joy", i == 0) for i in range(people)]
    frames = render_clip(chars, "joy", _envelope(12, 0), SIZE, np.random.default_rng(0))
    assert frames.shape == (12, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert measure_mouth_openings(frames, people).shape == (people, 12)


def test_boxes_are_disjoint_and_inside_the_frame():
    for people in range(1, MAX_PEOPLE + 1):
        boxes = character_boxes(people, SIZE)
        assert len(boxes) == people
        for (x0, y0, x1, y1), nxt in zip(boxes, [*boxes[1:], None], strict=True):
            assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE
            if nxt is not None:
                assert x1 <= nxt[0]
    assert character_boxes(0, SIZE) == []
    with pytest.raises(ValueError):
        character_boxes(MAX_PEOPLE + 1, SIZE)


def test_deterministic_given_the_rng():
    chars = [Character("male", "elderly", "fear", False), Character("female", "child", "joy", True)]
    env = _envelope(20, 1)
    a = render_clip(chars, "fear", env, SIZE, np.random.default_rng(7))
    b = render_clip(chars, "fear", env, SIZE, np.random.default_rng(7))
    c = render_clip(chars, "fear", env, SIZE, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    ("seed", "chars"),
    [
        (
            0,
            [
                Character("female", "child", "surprise", False),
                Character("male", "adult", "anger", True),
                Character("female", "elderly", "sadness", False),
            ],
        ),
        (
            1,
            [
                Character("male", "elderly", "joy", True),
                Character("female", "adult", "fear", False),
            ],
        ),
        (2, [Character("female", "adult", "disgust", True)]),
        (
            3,
            [
                Character("male", "child", "neutral", False),
                Character("female", "adult", "joy", False),
            ],
        ),
    ],
)
def test_mouths_follow_the_talker_after_mp4(seed, chars, tmp_path):
    """The talker's measured mouth tracks the envelope (r >= 0.8); silent ones do not
    (|r| <= 0.2), also when nobody on screen talks (narration)."""
    env = _envelope(100, seed)
    frames = render_clip(chars, EMOTIONS[seed], env, SIZE, np.random.default_rng(seed))
    mouths = measure_mouth_openings(_through_mp4(frames, tmp_path), len(chars))
    r = [np.corrcoef(track, env)[0, 1] for track in mouths]
    motion = np.abs(np.diff(mouths, axis=1)).mean(axis=1)
    talking = np.array([c.talking for c in chars])
    assert all(r[i] >= 0.8 for i in np.flatnonzero(talking)), r
    assert all(abs(r[i]) <= 0.2 for i in np.flatnonzero(~talking)), r
    if talking.any():  # idle motion is small next to speech
        assert motion[~talking].max(initial=0) < 0.3 * motion[talking].max()


def test_emotions_give_different_scene_colours():
    env = np.zeros(2)
    means = {
        emotion: render_clip([], emotion, env, SIZE, np.random.default_rng(0))[0]
        .reshape(-1, 3)
        .mean(axis=0)
        for emotion in EMOTIONS
    }
    for a, b in itertools.combinations(EMOTIONS, 2):
        assert np.abs(means[a] - means[b]).sum() > 40, (a, b)


def test_genders_and_ages_draw_differently():
    """Same rng, same emotion: every gender x age pair gives a clearly different figure."""
    env = np.zeros(2)
    x0, y0, x1, y1 = character_boxes(1, SIZE)[0]
    looks = {
        (g, a): render_clip(
            [Character(g, a, "neutral", False)], "neutral", env, SIZE, np.random.default_rng(0)
        )[0, y0:y1, x0:x1].astype(float)
        for g in GENDERS
        for a in AGES
    }
    for k1, k2 in itertools.combinations(looks, 2):
        assert np.abs(looks[k1] - looks[k2]).mean() > 5, (k1, k2)


def test_expressions_differ_between_emotions():
    env = np.zeros(2)
    x0, y0, x1, y1 = character_boxes(1, SIZE)[0]
    faces = {
        e: render_clip(
            [Character("female", "adult", e, False)], "neutral", env, SIZE, np.random.default_rng(0)
        )[0, y0 : y0 + (y1 - y0) // 2, x0:x1].astype(float)
        for e in EMOTIONS
    }
    for a, b in itertools.combinations(EMOTIONS, 2):
        assert np.abs(faces[a] - faces[b]).mean() > 1.0, (a, b)


def test_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    env = _envelope(10, 0)
    two_talkers = [Character("male", "adult", "joy", True), Character("male", "adult", "joy", True)]
    with pytest.raises(ValueError, match="one character talks"):
        render_clip(two_talkers, "joy", env, SIZE, rng)
    with pytest.raises(ValueError, match="scene emotion"):
        render_clip([], "boredom", env, SIZE, rng)
    with pytest.raises(ValueError, match="labels"):
        render_clip([Character("robot", "adult", "joy", True)], "joy", env, SIZE, rng)
    with pytest.raises(ValueError, match="mouth_open"):
        render_clip([], "joy", np.zeros(0), SIZE, rng)
