"""Dub a scene: every line through the served pipeline into its slot, then one track.

:func:`dub_scene` decodes the video once, checks the lines against it and the
voices, and builds one :class:`~dubops.inference.DubRequest` per line: the
frames of its slot, its text, the preceding line as the react cue, its
speaker's timbre prompt, its overrides and seed, and the slot's length as the
target. Lines whose inputs are in the :class:`SegmentCache` are read back;
the rest go through :meth:`DubbingPipeline.dub_many` in batches, and each is
kept as soon as its batch is done (an interrupted job resumes). The track is
then assembled from every line (:func:`dubops.scenes.track.assemble_track`).

Re-dubbing one line (new text, an override, another seed) changes that line's
key only, so only that line is dubbed again: the next line's react cue stays the
subtitle's own text (:attr:`Segment.cue`). An edited subtitle file is another
matter: there the new text is the preceding line, so the next line is dubbed
again as well.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dubops.inference.media import decode_video
from dubops.scenes.segment_cache import SegmentCache, input_key
from dubops.scenes.segments import Segment, check_segments
from dubops.scenes.track import assemble_track

if TYPE_CHECKING:
    from dubops.inference import DubbingPipeline, DubRequest
    from dubops.inference.result import DubResult

# What a progress callback hears about each line: queued, cached, dubbing, done.
Progress = Callable[[int, str], None]


@dataclass
class DubbedLine:
    """One line of a dubbed scene: its segment, how it was got, and what decided it."""

    segment: Segment
    key: str
    cached: bool
    wave: np.ndarray
    result: dict[str, Any]  # DubResult.to_json() of the dub that made it

    def to_json(self) -> dict[str, Any]:
        return {
            **self.segment.to_json(),
            "key": self.key,
            "cached": self.cached,
            "audio_seconds": round(len(self.wave) / self.result["sample_rate"], 4),
            "reasoning_text": self.result.get("reasoning_text", ""),
            "conclusion": self.result.get("conclusion"),
            "conclusion_source": self.result.get("conclusion_source", {}),
            "footage": self.result.get("footage", {}),
            "seconds": self.result.get("seconds", {}),
            "model_version": self.result.get("model_version"),
        }


@dataclass
class DubbedScene:
    """The scene's track, its lines, and where the time went."""

    track: np.ndarray
    sample_rate: int
    video_seconds: float
    lines: list[DubbedLine]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def dubbed(self) -> int:
        """How many lines were dubbed in this call (the rest came from the cache)."""
        return sum(not line.cached for line in self.lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "video_seconds": round(self.video_seconds, 4),
            "sample_rate": self.sample_rate,
            "track_seconds": round(len(self.track) / self.sample_rate, 4),
            "segments": [line.to_json() for line in self.lines],
            "dubbed": self.dubbed,
            "cached": len(self.lines) - self.dubbed,
            "seconds": self.seconds,
        }


def dub_scene(
    pipeline: DubbingPipeline,
    video: Path | bytes,
    segments: list[Segment],
    voices: dict[str, Path | bytes],
    cache: SegmentCache,
    model_id: str,
    seed: int = 0,
    batch_size: int = 8,
    progress: Progress | None = None,
    on_result: Callable[[DubResult], None] | None = None,
) -> DubbedScene:
    """Dub every line of ``segments`` into ``video`` with ``voices`` (speaker -> prompt).

    Args:
        model_id: what identifies the model's weights (:func:`model_fingerprint`); part of
            every line's key, so another model never reuses this one's lines.
        seed: the sampler seed of lines that do not set their own.
        progress: called with (segment number, state) as each line is queued, read from
            the cache, dubbed and done.
        on_result: called with each line's :class:`DubResult` as it is dubbed (a server
            counts it in its metrics and drift window; lines from the cache are not dubs).

    Raises:
        InputError: the video cannot be read, or a line does not fit it or its voice.
    """
    began = time.perf_counter()
    frames, fps = decode_video(video)
    video_seconds = len(frames) / fps
    check_segments(segments, video_seconds, voices)
    voice_hashes = {name: _digest(voice) for name, voice in voices.items()}
    requests, keys = [], []
    for i, s in enumerate(segments):
        react = segments[i - 1].cue if i else ""
        clip = frames[_frame(s.start, fps, len(frames)) : _frame(s.end, fps, len(frames))]
        line_seed = seed if s.seed is None else s.seed
        keys.append(
            input_key(
                {
                    "model": model_id,
                    "frames": clip,
                    "fps": fps,
                    "text": s.text,
                    "react": react,
                    "voice": voice_hashes[s.speaker],
                    "speaker": s.speaker,
                    "overrides": s.overrides,
                    "seed": line_seed,
                    "slot": s.seconds,
                }
            )
        )
        requests.append(_request(s, clip, fps, react, voices[s.speaker], line_seed))
    decoded = time.perf_counter()
    lines: dict[int, DubbedLine] = {}
    todo = []
    for s, key, request in zip(segments, keys, requests, strict=True):
        kept = cache.get(key)
        if kept is not None:
            lines[s.number] = DubbedLine(s, key, True, kept[0], kept[1])
            _tell(progress, s.number, "cached")
        else:
            todo.append((s, key, request))
            _tell(progress, s.number, "queued")
    for first in range(0, len(todo), max(1, batch_size)):
        batch = todo[first : first + batch_size]
        for s, _, _ in batch:
            _tell(progress, s.number, "dubbing")
        results = pipeline.dub_many([request for _, _, request in batch])
        for (s, key, _), result in zip(batch, results, strict=True):
            if on_result is not None:
                on_result(result)
            info = result.to_json()
            cache.put(key, result.wave, info)
            lines[s.number] = DubbedLine(s, key, False, np.asarray(result.wave, np.float32), info)
            _tell(progress, s.number, "done")
    dubbed = time.perf_counter()
    ordered = [lines[s.number] for s in segments]
    rate = pipeline.sample_rate
    placed = [(s.start, s.end, line.wave) for s, line in zip(segments, ordered, strict=True)]
    track = assemble_track(placed, video_seconds, rate)
    finished = time.perf_counter()
    seconds = {
        "decode": round(decoded - began, 3),
        "dub": round(dubbed - decoded, 3),
        "assemble": round(finished - dubbed, 3),
        "total": round(finished - began, 3),
    }
    return DubbedScene(track, rate, video_seconds, ordered, seconds)


def model_fingerprint(model: str, loaded: dict[str, Any], folders: list[Path | None]) -> str:
    """What identifies a loaded model for the cache: the registry's bundle hash, or the
    records (``stage.json``, ``bundle.json``, ``library.json`` ...) of the folders it came from.

    A run folder's ``stage.json`` changes whenever its stage trains again, so lines dubbed
    by an older model are never reused.
    """
    digest = hashlib.sha256(str(model).encode())
    digest.update(str(loaded.get("bundle_hash", "")).encode())
    digest.update(str(loaded.get("version", "")).encode())
    for folder in [Path(model) if not str(model).startswith("models:/") else None, *folders]:
        if folder is None or not folder.is_dir():
            continue
        for record in sorted(folder.glob("*.json")):
            digest.update(record.name.encode())
            digest.update(record.read_bytes())
    return digest.hexdigest()


def _request(
    s: Segment, clip: np.ndarray, fps: float, react: str, voice: Path | bytes, seed: int
) -> DubRequest:
    from dubops.inference import DubRequest

    return DubRequest(
        video=clip,
        fps=fps,
        script=s.text,
        prompt=voice,
        react=react,
        clip_id=f"segment{s.number:04d}",
        speaker_id=s.speaker,
        target_seconds=s.seconds,
        seed=seed,
        **s.overrides,
    )


def _frame(seconds: float, fps: float, count: int) -> int:
    return min(count, max(0, round(seconds * fps)))


def _digest(voice: Path | bytes) -> str:
    data = voice.read_bytes() if isinstance(voice, Path) else voice
    return hashlib.sha256(data).hexdigest()


def _tell(progress: Progress | None, number: int, state: str) -> None:
    if progress is not None:
        progress(number, state)
