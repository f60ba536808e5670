"""A scene with several speakers dubbed line by line: ``dubops data scene`` and ``dub-video``.

The model is the registered micro champion (untrained, so what is checked is the
plumbing): every line lands in its own slot, the track is the video's length,
the lines come back with what decided them, re-dubbing one line leaves every
other line's samples bit-identical, and bad subtitles or voices are refused
before anything is written.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dubops.cli.main import app

runner = CliRunner()
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scene(small_synthetic_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("scene")
    made = runner.invoke(
        app,
        ["data", "scene", "--data", str(small_synthetic_corpus), "--out", str(out),
         "--seconds", "20", "--speakers", "3", "--json"],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    return json.loads(made.stdout)


def _dub(scene, champion, out: Path, *extra: str, voices: dict | None = None):
    sets = [a for s in champion.sets for a in ("--set", s)]
    chosen = scene["voices"] if voices is None else voices
    given = [a for k, v in chosen.items() for a in ("--voice", f"{k}={v}")]
    return runner.invoke(
        app,
        ["dub-video", scene["video"], "--subtitles", scene["subtitles"], *given,
         "--out", str(out), "--json", *sets, *extra],
    )  # fmt: skip


def _track(out: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    wave, rate = sf.read(str(out.with_suffix(".wav")), dtype="int16")
    return wave, rate


def test_the_scene_is_three_speakers_taking_turns_in_slots_that_never_overlap(scene):
    from dubops.audio import read_wav
    from dubops.scenes.segments import read_segments
    from dubops.video import probe_video

    lines = read_segments(scene["subtitles"])
    assert len({s.speaker for s in lines}) == 3 and set(scene["voices"]) == {
        s.speaker for s in lines
    }
    assert all(a.end <= b.start for a, b in itertools.pairwise(lines))
    assert abs(probe_video(scene["video"]).seconds - 20.0) < 0.05
    reference, rate = read_wav(Path(scene["video"]).with_name("reference.wav"))
    assert len(reference) == 20 * rate


def test_dub_video_fills_each_slot_and_redubbing_one_line_leaves_the_rest_bit_identical(
    scene, served_champion, tmp_path
):
    from dubops.scenes.track import slot_samples
    from dubops.video import probe_video

    out = tmp_path / "dub" / "scene.mp4"
    first = _dub(scene, served_champion, out)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    n = len(summary["segments"])
    assert summary["dubbed"] == n and summary["cached"] == 0
    video = probe_video(out)
    track, rate = _track(out)
    assert video.has_audio and len(track) == round(video.seconds * rate)
    for line in summary["segments"]:
        assert line["conclusion"] and "reasoning_text" in line and "generate" in line["seconds"]
        assert set(line["footage"]) == {"scene", "face", "text"}
    assert json.loads(out.with_suffix(".json").read_text())["segments"] == summary["segments"]

    again = _dub(
        scene, served_champion, out, "--segment", "2.seed=5", "--segment", "2.emotion=fear"
    )
    assert again.exit_code == 0, again.output
    redone = json.loads(again.stdout)
    assert (redone["dubbed"], redone["cached"]) == (1, n - 1)
    assert redone["segments"][1]["conclusion"]["emotion"] == "fear"
    assert redone["segments"][1]["conclusion_source"]["emotion"] == "override"
    second, _ = _track(out)
    start, end = slot_samples(redone["segments"][1]["start"], redone["segments"][1]["end"], rate)
    outside = np.ones(len(track), dtype=bool)
    outside[start:end] = False
    assert np.array_equal(track[outside], second[outside])
    assert not np.array_equal(track[start:end], second[start:end])

    # A new text for line 1: that line alone (line 2 still reacts to the subtitle's text).
    retold = _dub(scene, served_champion, out, "--segment", "1.text=Something else entirely.",
                  "--segment", "2.seed=5", "--segment", "2.emotion=fear")  # fmt: skip
    assert retold.exit_code == 0, retold.output
    assert json.loads(retold.stdout)["dubbed"] == 1

    # The same voices from a folder of SPEAKER.wav: the same inputs, so nothing is dubbed.
    folder = Path(next(iter(scene["voices"].values()))).parent
    unchanged = _dub(scene, served_champion, out, "--voices-dir", str(folder), "--segment",
                     "2.seed=5", "--segment", "2.emotion=fear", voices={})  # fmt: skip
    assert unchanged.exit_code == 0, unchanged.output
    assert json.loads(unchanged.stdout)["dubbed"] == 0


def test_bad_subtitles_and_missing_voices_are_refused_before_anything_is_written(
    scene, served_champion, tmp_path
):
    out = tmp_path / "bad" / "scene.mp4"
    voices = dict(scene["voices"])
    missing = sorted(voices)[0]
    del voices[missing]
    result = _dub(scene, served_champion, out, voices=voices)
    assert result.exit_code == 2
    assert "has no voice" in result.output and f"--voice {missing}=" in result.output

    overlapping = tmp_path / "overlap.srt"
    overlapping.write_text(
        "1\n00:00:00,000 --> 00:00:03,000\nA: One line.\n\n"
        "2\n00:00:02,000 --> 00:00:04,000\nB: Another.\n"
    )
    past = tmp_path / "past.json"
    past.write_text(json.dumps([{"start": 18, "end": 25, "speaker": "A", "text": "Late."}]))
    two = {"A": voices[sorted(voices)[0]], "B": voices[sorted(voices)[-1]]}
    cases = (
        (overlapping, "line 5: starts at 2.000 s"),
        (past, "line 1: ends at 25.000 s, past the video's end"),
    )
    for subtitles, expected in cases:
        result = _dub(dict(scene, subtitles=str(subtitles)), served_champion, out, voices=two)
        assert result.exit_code == 2 and expected in result.output, result.output
    assert not out.parent.exists()
