"""A scene's track and its line cache: slots, lengths, keys, and exact read-back."""

from __future__ import annotations

import numpy as np

from dubops.scenes.segment_cache import SegmentCache, input_key
from dubops.scenes.track import assemble_track, slot_samples

RATE = 1000


def test_each_line_stays_in_its_slot_and_the_track_is_the_videos_length():
    long = np.ones(2500, dtype=np.float32)  # 2.5 s for a 2 s slot
    short = np.full(500, 0.5, dtype=np.float32)
    track = assemble_track([(0.0, 2.0, long), (2.0, 3.0, short)], 4.0, RATE)
    assert len(track) == 4000
    assert track[0] == 1.0 and track[1989] == 1.0
    assert track[1999] < 0.2  # faded where it was cut, not spilled into the next slot
    assert np.all(track[2000:2500] == 0.5) and np.all(track[2500:] == 0.0)


def test_touching_slots_touch_without_a_gap_or_an_overlap():
    assert slot_samples(0.0, 1.0004, RATE)[1] == slot_samples(1.0004, 2.0, RATE)[0]


def test_a_line_past_the_videos_end_is_cut_at_the_end():
    track = assemble_track([(1.0, 3.0, np.ones(2000, np.float32))], 2.0, RATE)
    assert len(track) == 2000 and track[1000] == 1.0


def test_the_key_changes_with_any_input_and_only_then():
    parts = {"text": "Hi.", "seed": 0, "frames": np.zeros((2, 4, 4, 3), np.uint8)}
    same = {"seed": 0, "text": "Hi.", "frames": np.zeros((2, 4, 4, 3), np.uint8)}
    assert input_key(parts) == input_key(same)
    assert input_key(parts) != input_key(parts | {"seed": 1})
    other = np.zeros((2, 4, 4, 3), np.uint8)
    other[1, 2, 2, 0] = 1
    assert input_key(parts) != input_key(parts | {"frames": other})


def test_a_kept_line_reads_back_bit_for_bit_and_a_half_written_one_is_not_kept(tmp_path):
    cache = SegmentCache(tmp_path)
    wave = np.random.default_rng(0).standard_normal(777).astype(np.float32)
    cache.put("k", wave, {"sample_rate": 24000})
    kept, info = cache.get("k")
    assert kept.tobytes() == wave.tobytes() and info == {"sample_rate": 24000}
    (tmp_path / "k.json").unlink()  # the JSON is written last: without it, no entry
    assert cache.get("k") is None
