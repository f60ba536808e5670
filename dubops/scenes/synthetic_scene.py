"""A multi-speaker scene made of corpus clips: a video, its subtitles and the voices.

Tests and the demo need what a user brings to ``dubops dub-video``: one video
with several characters, subtitles that say who speaks when, and a timbre
prompt per speaker. :func:`make_scene` strings held-out corpus clips of
``speakers`` speakers, taking turns, into one video with a short cut to black
between lines, until the next clip would pass ``seconds``; black frames then
fill the video to exactly ``seconds``.

Written to ``out``: ``scene.mp4`` (silent), ``scene.srt`` (``SPEAKER: line``),
``voices/<speaker>.wav`` (each speaker's corpus timbre prompt: another
utterance, never a line of the scene), ``reference.wav`` (the clips' own
speech in their slots, for scoring) and ``scene.json`` (which clip fills
which slot).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dubops.errors import InputError

# A cut to black between lines: long enough to hear the turn, short enough to keep
# a minute of scene mostly speech.
GAP_SECONDS = 0.4


@dataclass(frozen=True)
class SceneFiles:
    """Where :func:`make_scene` wrote the scene."""

    video: Path
    subtitles: Path
    voices: dict[str, Path]
    reference: Path
    description: Path

    def voice_options(self) -> list[str]:
        """``--voice`` values for ``dubops dub-video``."""
        return [f"{name}={path}" for name, path in self.voices.items()]


def make_scene(
    data_dir: str | Path,
    out_dir: str | Path,
    speakers: int = 3,
    seconds: float = 60.0,
    splits: tuple[str, ...] = ("test_s1", "test_s2"),
    gap: float = GAP_SECONDS,
) -> SceneFiles:
    """Write a scene of ``speakers`` taking turns for ``seconds`` (see the module's doc)."""
    from dubops.audio import read_wav, write_wav
    from dubops.data.datasets import load_manifest
    from dubops.data.layout import CorpusLayout
    from dubops.fileio import atomic_path, write_json
    from dubops.video import read_video, write_video

    layout = CorpusLayout(Path(data_dir))
    manifest = load_manifest(data_dir, list(splits))
    counts = manifest.groupby("speaker").size().sort_values(ascending=False, kind="stable")
    if len(counts) < speakers:
        raise InputError(
            f"--speakers {speakers}: splits {list(splits)} of {data_dir} have "
            f"{len(counts)} speakers; ask for fewer or add splits (--split)"
        )
    cast = sorted(counts.index[:speakers])
    queues = {s: manifest[manifest["speaker"] == s].to_dict("records") for s in cast}
    pieces: list[tuple[dict[str, Any], np.ndarray, np.ndarray]] = []
    fps = rate = None
    clock = 0.0
    turn = 0
    while any(queues.values()):
        speaker = cast[turn % speakers]
        turn += 1
        if not queues[speaker]:
            continue
        row = queues[speaker].pop(0)
        frames, clip_fps = read_video(layout.resolve(row["video_path"]))
        wave, clip_rate = read_wav(layout.resolve(row["audio_path"]))
        fps, rate = fps or clip_fps, rate or clip_rate
        if (clip_fps, clip_rate) != (fps, rate):
            raise InputError(f"{data_dir}: clip {row['clip_id']} has another frame or sample rate")
        length = len(frames) / fps
        if clock + length > seconds:
            break
        pieces.append((row | {"start": clock, "end": clock + length}, frames, wave))
        clock += length + gap
    if not pieces:
        raise InputError(f"--seconds {seconds:g}: shorter than any clip; give a longer scene")
    assert fps is not None and rate is not None
    out = Path(out_dir)
    (out / "voices").mkdir(parents=True, exist_ok=True)
    video, track = _strung(pieces, fps, rate, seconds)
    write_video(out / "scene.mp4", video, fps)
    write_wav(out / "reference.wav", track, rate)
    cues = [_cue(n, row) for n, (row, _, _) in enumerate(pieces, start=1)]
    with atomic_path(out / "scene.srt") as tmp:
        tmp.write_text("\n".join(cues), encoding="utf-8")
    voices = {}
    for speaker in cast:
        first = next(row for row, _, _ in pieces if row["speaker"] == speaker)
        voices[speaker] = out / "voices" / f"{speaker}.wav"
        with atomic_path(voices[speaker]) as tmp:
            shutil.copyfile(layout.resolve(first["prompt_audio_path"]), tmp)
    slots = [
        {k: row[k] for k in ("clip_id", "speaker", "start", "end", "script", "emotion", "split")}
        for row, _, _ in pieces
    ]
    write_json(out / "scene.json", {"seconds": seconds, "fps": fps, "sample_rate": rate,
                                    "speakers": cast, "segments": slots})  # fmt: skip
    return SceneFiles(out / "scene.mp4", out / "scene.srt", voices, out / "reference.wav",
                      out / "scene.json")  # fmt: skip


def _strung(
    pieces: list[tuple[dict[str, Any], np.ndarray, np.ndarray]],
    fps: float,
    rate: int,
    seconds: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The clips' frames and speech in their slots, black and silence elsewhere."""
    shape = pieces[0][1].shape[1:]
    video = np.zeros((round(seconds * fps), *shape), dtype=np.uint8)
    track = np.zeros(round(seconds * rate), dtype=np.float32)
    for row, frames, wave in pieces:
        if frames.shape[1:] != shape:
            raise InputError(f"clip {row['clip_id']}: frames of another size than the scene's")
        first = round(row["start"] * fps)
        video[first : first + len(frames)] = frames[: len(video) - first]
        begin = round(row["start"] * rate)
        track[begin : begin + len(wave)] = wave[: len(track) - begin]
    return video, track


def _cue(number: int, row: dict[str, Any]) -> str:
    return (
        f"{number}\n{_stamp(row['start'])} --> {_stamp(row['end'])}\n"
        f"{row['speaker']}: {row['script']}\n"
    )


def _stamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"
