"""The drift statistics, the calibrated reference and its false-alarm rate on same-law windows."""

from __future__ import annotations

import numpy as np
import pytest

from dubops.errors import InputError
from dubops.monitoring import drift
from dubops.monitoring.features import CATEGORICAL, SCALAR, clip_features
from dubops.monitoring.reference import ReferenceProfile, build_reference

EMOTIONS = ["anger", "joy", "sadness", "neutral"]


def _records(n: int, rng: np.random.Generator, fps: float = 25.0, joy: float = 0.25):
    """Feature records and 16-d vectors of a made-up population."""
    features, vectors = [], []
    others = [e for e in EMOTIONS if e != "joy"]
    for _ in range(n):
        emotion = "joy" if rng.random() < joy else str(rng.choice(others))
        record = {name: "x" for name in CATEGORICAL} | {"emotion": emotion}
        record |= {name: float(rng.normal()) for name in SCALAR}
        record["video_fps"] = fps
        features.append(record)
        vectors.append({"scene": rng.normal(size=16).tolist()})
    return features, vectors


def test_statistics_are_zero_on_identical_samples_and_grow_with_shift() -> None:
    rng = np.random.default_rng(0)
    ref = np.sort(rng.normal(size=200))
    assert drift.ks(ref, ref) == 0.0
    assert drift.ks(ref, ref + 3.0) > 0.8
    assert drift.ks(ref, np.array([np.nan])) != drift.ks(ref, np.array([np.nan]))  # NaN
    counts = {"a": 50, "b": 50}
    assert drift.psi(counts, ["a", "b"] * 10) < 0.01
    assert drift.psi(counts, ["c"] * 20) > 1.0  # an unseen category is finite, large
    points = rng.normal(size=(60, 4))
    width = drift.median_distance(points)
    assert drift.mmd(points, points, width) == pytest.approx(0.0, abs=1e-12)
    assert drift.mmd(points, points + 2.0, width) > drift.mmd(points[:30], points[30:], width)


def test_reference_flags_shifts_and_rarely_same_law_windows() -> None:
    rng = np.random.default_rng(1)
    features, vectors = _records(300, rng)
    reference = build_reference(features, vectors, window=20, draws=1000)
    assert set(reference.thresholds) == set(CATEGORICAL) | set(SCALAR) | {"embedding_scene"}

    def flagged(window_features, window_vectors) -> bool:
        report = reference.compare(window_features, window_vectors)
        return any(row["score"] > 1 for row in report.values())

    same = [flagged(*_records(20, rng)) for _ in range(40)]
    assert sum(same) <= 6  # alpha 0.05 family-wise: ~2 of 40 expected
    assert flagged(*_records(20, rng, fps=30.0))  # another frame rate
    assert flagged(*_records(20, rng, joy=0.9))  # another emotion mix
    shifted_f, shifted_v = _records(20, rng)
    for v in shifted_v:
        v["scene"] = (np.asarray(v["scene"]) + 1.5).tolist()
    report = reference.compare(shifted_f, shifted_v)
    assert report["embedding_scene"]["score"] > 1


def test_reference_round_trips_and_refuses_too_few_clips(tmp_path) -> None:
    rng = np.random.default_rng(2)
    features, vectors = _records(50, rng)
    features[0]["prompt_pitch_hz"] = float("nan")  # an unvoiced prompt
    reference = build_reference(features, vectors, window=10, draws=200)
    path = reference.save(tmp_path / "ref.json")
    loaded = ReferenceProfile.load(path)
    window = _records(10, rng)
    assert loaded.compare(*window) == reference.compare(*window)
    assert loaded.records[0]["prompt_pitch_hz"] is None
    with pytest.raises(InputError, match=r"monitoring\.window"):
        build_reference(features[:15], vectors[:15], window=10)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="not a format"):
        ReferenceProfile.load(tmp_path / "bad.json")


def test_clip_features_describe_media_script_and_footage() -> None:
    rate = 24000
    t = np.arange(rate) / rate
    prompt = (0.1 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    record = clip_features(
        "Hello there!",
        (75, 96, 128, 3),
        25.0,
        prompt,
        rate,
        None,
        {"scene_type": "dialogue", "gender": "male", "age": "adult", "emotion": "joy"},
        {"scene": [{"similarity": 0.5}, {"similarity": 0.7}]},
    )
    assert record["video_seconds"] == 3.0 and record["video_width"] == 128.0
    assert record["script_letters"] == 10.0
    assert record["letters_per_second"] == pytest.approx(10 / 3, abs=1e-4)
    assert record["prompt_pitch_hz"] == pytest.approx(150, rel=0.05)
    assert record["prompt_dbfs"] == pytest.approx(-23.0, abs=0.2)
    assert record["similarity_scene"] == pytest.approx(0.6)
    assert np.isnan(record["similarity_face"])
    assert clip_features("a", (25, 8, 8, 3), 25.0, prompt, rate, None, None, {})["emotion"] == (
        "none"
    )
