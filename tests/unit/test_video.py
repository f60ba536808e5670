"""Video I/O: exact frame counts and fps through h264 mp4, audio muxing, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from dubops.audio import write_wav
from dubops.video import VideoInfo, mux_audio, probe_video, read_video, write_video

FPS = 25
SR = 24_000


def _frames(n: int = 30, size: int = 32) -> np.ndarray:
    """Flat colours changing over time: survive h264 nearly unchanged."""
    t = np.linspace(0, 1, n)[:, None, None, None]
    colour = np.array([40, 120, 200])[None, None, None, :]
    frames = np.broadcast_to(colour + 50 * t, (n, size, size, 3))
    return np.ascontiguousarray(frames, dtype=np.uint8)


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_round_trip_without_audio(tmp_path):
    frames = _frames()
    path = tmp_path / "clip.mp4"
    write_video(path, frames, FPS)
    decoded, fps = read_video(path)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert fps == FPS
    assert np.abs(decoded.astype(int) - frames).mean() < 3
    info = probe_video(path)
    assert info == VideoInfo(frames=30, fps=25.0, seconds=1.2, width=32, height=32, has_audio=False)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temp file left


def test_round_trip_with_audio(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, _frames(50), FPS, wave=_tone(2.0), sample_rate=SR)
    info = probe_video(path)
    assert info.frames == 50 and info.fps == FPS and info.has_audio
    decoded, _ = read_video(path)
    assert len(decoded) == 50


def test_mux_audio_copies_video_and_adds_track(tmp_path):
    video, wav, out = tmp_path / "silent.mp4", tmp_path / "dub.wav", tmp_path / "dubbed.mp4"
    frames = _frames(25)
    write_video(video, frames, FPS)
    write_wav(wav, _tone(1.0), SR)
    mux_audio(video, wav, out)
    assert probe_video(out).has_audio
    original, _ = read_video(video)
    muxed, fps = read_video(out)
    assert fps == FPS
    np.testing.assert_array_equal(muxed, original)  # stream copied, not re-encoded


def test_bad_inputs_to_write_video(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 33, 32, 3), np.uint8), FPS)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "f.mp4", np.zeros((2, 32, 32, 3), np.float32), FPS)
    with pytest.raises(ValueError, match="sample_rate"):
        write_video(tmp_path / "a.mp4", _frames(2), FPS, wave=_tone(0.1))


@pytest.mark.parametrize("reader", [read_video, probe_video])
def test_corrupt_file_names_the_path(tmp_path, reader):
    good = tmp_path / "good.mp4"
    write_video(good, _frames(), FPS)
    data = good.read_bytes()
    cases = {
        "garbage.mp4": b"this is not a video at all" * 10,
        "truncated.mp4": data[: len(data) // 3],
        "empty.mp4": b"",
    }
    for name, payload in cases.items():
        bad = tmp_path / name
        bad.write_bytes(payload)
        with pytest.raises(ValueError, match=f"cannot read video {bad}"):
            reader(bad)


def test_audio_only_file_is_not_a_video(tmp_path):
    wav = tmp_path / "speech.wav"
    write_wav(wav, _tone(0.5), SR)
    with pytest.raises(ValueError, match="no video stream"):
        probe_video(wav)


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(ValueError, match=f"cannot read video {missing}: no such file"):
        read_video(missing)
    with pytest.raises(ValueError, match="cannot read video"):
        probe_video(missing)
