"""The paired difference adds the take-to-take noise that a clip SE cannot see."""

import math

import numpy as np
import pytest

from dubops.evaluation.paired import paired_difference


def test_one_take_is_the_clip_paired_standard_error():
    a = np.array([1, 1, 0, 1, 0, 1, 1, 0], float)
    b = np.array([0, 1, 0, 0, 0, 1, 0, 0], float)
    result = paired_difference(a, b)
    d = a - b
    assert result.diff == pytest.approx(d.mean())
    assert result.se == pytest.approx(d.std(ddof=1) / math.sqrt(len(d)))
    assert result.takes == 1 and math.isnan(result.se_takes)
    assert result.as_dict()["se_takes"] is None  # strict JSON has no NaN


def test_takes_that_disagree_widen_the_standard_error_beyond_the_clips():
    rng = np.random.default_rng(0)
    clips = 400
    b = rng.random((2, clips)) < 0.5
    # Take 0 of system a beats b by about 0.3, take 1 loses by about 0.3: the same mean
    # difference near 0 as takes that agree, but a training that decides the sign.
    a = np.stack([b[0] | (rng.random(clips) < 0.6), b[1] & (rng.random(clips) < 0.4)])
    result = paired_difference(a, b)
    assert result.per_take[0] > 0.2 and result.per_take[1] < -0.2
    assert result.se_takes > 5 * result.se_clips
    assert result.se == pytest.approx(math.hypot(result.se_clips, result.se_takes))
    assert abs(result.diff) < 2 * result.se


def test_identical_takes_add_nothing():
    a = np.tile(np.array([1, 0, 1, 1, 0, 1], float), (3, 1))
    b = np.tile(np.array([0, 0, 1, 0, 0, 1], float), (3, 1))
    result = paired_difference(a, b)
    assert result.se_takes == 0.0
    assert result.se == pytest.approx(result.se_clips)


def test_unpaired_shapes_are_refused():
    with pytest.raises(ValueError, match="same takes and clips"):
        paired_difference(np.ones((2, 5)), np.ones((3, 5)))
