"""Lip alignment: words move onto the open mouth, totals stay exact, flat tracks change nothing."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from dubops.data.cartoon import Character, render_clip
from dubops.speech.lip_align import (
    align_to_mouth,
    align_words,
    mouth_activity,
    mouth_tracks,
    talker_track,
)
from dubops.speech.settings import LipAlignConfig

# Three words with a pause slot after each: spoken 30, 20, 25 frames.
PAUSE = np.array([0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1], dtype=bool)
TRUE = np.array([10, 12, 8, 15, 9, 11, 20, 5, 10, 10, 0])


def _starts(frames: np.ndarray) -> np.ndarray:
    return np.cumsum(frames) - frames


def _activity(frames: np.ndarray) -> np.ndarray:
    spoken = np.repeat(~PAUSE, frames).astype(float)
    return (spoken - spoken.mean()) / spoken.std()


def test_words_move_onto_the_open_mouth():
    # The prediction runs the words together and leaves the silence at the end.
    predicted = np.array([10, 12, 8, 0, 9, 11, 0, 5, 10, 10, 35])
    frames, gain = align_words(predicted, PAUSE, _activity(TRUE), LipAlignConfig())
    assert frames.sum() == TRUE.sum()
    assert (frames[~PAUSE] >= 1).all()
    before = np.abs(_starts(predicted) - _starts(TRUE))[~PAUSE].mean()
    after = np.abs(_starts(frames) - _starts(TRUE))[~PAUSE].mean()
    assert after < 0.1 * before
    assert gain > 0


def test_a_flat_track_leaves_the_prediction_as_it_was():
    predicted = np.array([10, 12, 8, 5, 9, 11, 5, 5, 10, 10, 15])
    flat = mouth_activity(np.full(30, 0.4), int(predicted.sum()))
    assert not flat.any()
    frames, gain = align_words(predicted, PAUSE, flat, LipAlignConfig())
    assert frames.tolist() == predicted.tolist() and gain == 0


def test_a_boundary_without_a_pause_cannot_open_a_gap():
    pause = np.zeros(4, dtype=bool)  # one word, no slot anywhere
    predicted = np.array([5, 5, 5, 5])
    activity = np.r_[-np.ones(10), np.ones(10)]
    frames, _ = align_words(predicted, pause, activity, LipAlignConfig())
    assert frames.tolist() == predicted.tolist()


def test_the_talker_track_is_chosen_among_idle_mouths():
    # Video frames at half the mel rate (55); the talker opens and closes per syllable.
    spoken = np.repeat(~PAUSE, TRUE)[::2]
    syllables = 0.5 + 0.5 * np.abs(np.sin(np.arange(len(spoken)) * 0.8))
    talker = np.where(spoken, syllables, 0.2)
    idle = np.where(np.arange(len(talker)) % 20 == 0, 1.0, 0.3)  # parts now and then
    wall = np.full(len(talker), 0.05)
    predicted = np.array([10, 12, 8, 0, 9, 11, 0, 5, 10, 10, 35])
    aligned = align_to_mouth(predicted, PAUSE, np.stack([idle, wall, talker]), LipAlignConfig())
    assert aligned.track == 2 and aligned.gain > 0
    assert talker_track(np.stack([wall, idle])) == 1


def test_cartoon_tracks_follow_the_drawn_mouth():
    rng = np.random.default_rng(0)
    signal = np.clip(np.sin(np.linspace(0, 6 * np.pi, 40)), 0, 1)
    chars = [Character("male", "adult", "joy", False), Character("female", "adult", "joy", True)]
    frames = render_clip(chars, "joy", signal, 128, rng)
    tracks = mouth_tracks(frames, "cartoon")
    assert tracks.shape == (6, 40)  # layouts of 1, 2 and 3 characters
    talker = tracks[2]  # the second slot of the two-character layout
    assert np.corrcoef(talker, signal)[0, 1] > 0.9


def test_settings_keep_the_prediction_a_candidate():
    with pytest.raises(ValidationError, match=r"include 1\.0"):
        LipAlignConfig(ratios=[0.9, 1.1])
    with pytest.raises(ValueError, match="tracker"):
        mouth_tracks(np.zeros((3, 32, 32, 3), np.uint8), "sonar")


def test_black_frames_read_as_a_flat_track():
    tracks = mouth_tracks(np.zeros((5, 64, 64, 3), np.uint8), "cartoon")
    assert np.isfinite(tracks).all() and not mouth_activity(tracks[0], 20).any()
