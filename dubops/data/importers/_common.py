"""What every importer shares: media conversion, durations, prompts and the manifest write.

An importer parses its published layout into :class:`SourceClip` records;
:func:`write_corpus` turns them into a corpus folder (:mod:`dubops.data.layout`):
audio resampled to 24 kHz mono, video copied (or re-encoded when it is not an
mp4 at the corpus frame rate), a timbre prompt per clip, the manifest written
atomically last so a half-finished import never looks like a corpus.
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dubops.data import schema
from dubops.data.layout import CorpusLayout, manifest_hash
from dubops.errors import InputError
from dubops.fileio import atomic_path, write_json

if TYPE_CHECKING:
    from dubops.config import AudioConfig, VideoConfig

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
PAUSE = "_"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@+-]")

_GENDERS = {"f": "female", "female": "female", "woman": "female", "m": "male", "male": "male"}
_AGES = {
    "child": "child",
    "kid": "child",
    "young": "child",
    "adult": "adult",
    "elderly": "elderly",
    "old": "elderly",
    "senior": "elderly",
}


@dataclass
class Segment:
    """Phonemes spoken up to ``end`` seconds (None: up to the end of the clip)."""

    phonemes: list[str]
    end: float | None = None


@dataclass
class SourceClip:
    """One clip as an importer found it, before any media is converted."""

    clip_id: str
    split: str
    speaker: str
    script: str
    segments: list[Segment]
    audio_src: Path
    video_src: Path
    gender: str
    age: str
    emotion: str = "neutral"
    scene_type: str = "monologue"
    num_people: int = 1
    talker_index: int = 0
    react: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def safe_clip_id(name: str) -> str:
    """A clip id usable as a file stem (characters outside ``[A-Za-z0-9_.@+-]`` -> ``_``)."""
    return _UNSAFE.sub("_", name)


def read_table(path: Path, fields: int) -> list[tuple[int, list[str]]]:
    """``|``-separated lines of at least ``fields`` fields: ``[(line_no, fields)]``.

    Blank lines and ``#`` comments are skipped; a short line is a ValueError
    naming the file and line.
    """
    rows = []
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < fields:
            raise InputError(
                f"{path}:{no}: expected {fields} '|'-separated fields, got {len(parts)}: {line!r}"
            )
        rows.append((no, parts))
    return rows


def read_speaker_info(path: Path) -> dict[str, tuple[str | None, str | None]]:
    """Optional ``speaker|gender|age`` file -> ``{speaker: (gender, age)}`` (empty if absent)."""
    if not path.is_file():
        return {}
    info: dict[str, tuple[str | None, str | None]] = {}
    for no, (speaker, gender, *rest) in read_table(path, 2):
        age = rest[0] if rest else ""
        info[speaker] = (
            _label(gender, _GENDERS, path, no) if gender else None,
            _label(age, _AGES, path, no) if age else None,
        )
    return info


def _label(value: str, synonyms: dict[str, str], path: Path, no: int) -> str:
    key = value.strip().lower()
    if key not in synonyms:
        allowed = ", ".join(sorted(set(synonyms.values())))
        raise InputError(f"{path}:{no}: unknown label {value!r}; use one of {allowed}")
    return synonyms[key]


def index_media(root: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    """``{stem: path}`` of every file under ``root`` with one of ``suffixes`` (first wins)."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in suffixes and path.is_file():
            found.setdefault(path.stem, path)
    return found


def spread_frames(
    segments: Sequence[Segment], mel_frames: int, frames_per_second: float
) -> list[int]:
    """Mel-frame durations of the phonemes of ``segments``, summing to ``mel_frames``.

    A segment ends at ``round(end * frames_per_second)`` (clamped to the clip) and
    the last one at ``mel_frames``; inside a segment the frames are spread evenly
    (the first phonemes take the remainder).
    """
    out: list[int] = []
    start = 0
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if last or seg.end is None:
            end = mel_frames
        else:
            end = min(max(round(seg.end * frames_per_second), start), mel_frames)
        n = len(seg.phonemes)
        if n:
            base, rem = divmod(end - start, n)
            out += [base + (1 if k < rem else 0) for k in range(n)]
            start = end
    if out:  # a trailing segment without phonemes: its frames go to the last phoneme
        out[-1] += mel_frames - sum(out)
    return out


@functools.lru_cache(maxsize=4096)
def espeak_phonemes(text: str, voice: str = "en-us") -> tuple[str, ...]:
    """espeak-ng's phonemes of ``text`` without its pause symbols (cached: GRID has 51 words)."""
    from dubops.speech.espeak import EspeakSynthesizer, Prosody

    utt = EspeakSynthesizer.shared().synthesize(text, voice, Prosody())
    return tuple(p for p in utt.phonemes if p and not p.startswith(PAUSE))


def write_corpus(
    clips: Sequence[SourceClip],
    out_root: Path,
    source: str,
    audio: AudioConfig,
    video: VideoConfig,
    info: dict[str, Any],
    workers: int = 2,
    progress: Progress | None = None,
) -> Path:
    """Convert ``clips`` into the corpus folder ``out_root``; returns the manifest path."""
    import pandas as pd

    if not clips:
        raise InputError(f"no clips to import into {out_root}")
    ids = Counter(c.clip_id for c in clips)
    dupes = sorted(k for k, v in ids.items() if v > 1)
    if dupes:
        raise InputError(f"clip ids appear more than once in the source: {', '.join(dupes[:5])}")
    layout = CorpusLayout(Path(out_root))
    layout.make_dirs()
    total, done = len(clips), 0
    rows: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for row in pool.map(lambda c: _convert(c, layout, source, audio, video), clips):
            rows.append(row)
            done += 1
            if progress is not None:
                progress(done, total)
    _assign_prompts(rows, layout)
    df = pd.DataFrame(rows, columns=list(schema.COLUMNS))
    with atomic_path(layout.manifest) as tmp:
        df.to_parquet(tmp, index=False)
    splits = df["split"].value_counts().to_dict()
    write_json(
        layout.info,
        {
            "source": source,
            "clips": len(df),
            "splits": splits,
            "speakers": int(df["speaker"].nunique()),
            "data_version": manifest_hash(layout.manifest),
            **info,
        },
    )
    logger.info("imported %d %s clips into %s (%s)", len(df), source, out_root, splits)
    return layout.manifest


def _convert(
    clip: SourceClip, layout: CorpusLayout, source: str, audio: AudioConfig, video: VideoConfig
) -> dict[str, Any]:
    from dubops.audio import num_mel_frames, read_wav, write_wav
    from dubops.video import probe_video

    wave, sr = read_wav(clip.audio_src, audio.sample_rate)
    write_wav(layout.resolve(layout.audio_rel(clip.clip_id)), wave, sr)
    mel_frames = num_mel_frames(len(wave), audio.hop_length)
    phonemes = [p for seg in clip.segments for p in seg.phonemes]
    frames = spread_frames(clip.segments, mel_frames, audio.sample_rate / audio.hop_length)
    video_dst = layout.resolve(layout.video_rel(clip.clip_id))
    copy_video(clip.video_src, video_dst, video.fps, video.crf)
    vinfo = probe_video(video_dst)
    return {
        "clip_id": clip.clip_id,
        "split": clip.split,
        "speaker": clip.speaker,
        "gender": clip.gender,
        "age": clip.age,
        "emotion": clip.emotion,
        "scene_type": clip.scene_type,
        "num_people": int(clip.num_people),
        "talker_index": int(clip.talker_index),
        "script": clip.script,
        "react": clip.react,
        "phonemes": phonemes,
        "phoneme_frames": frames,
        "mel_frames": int(mel_frames),
        "audio_path": layout.audio_rel(clip.clip_id),
        "audio_seconds": len(wave) / sr,
        "video_path": layout.video_rel(clip.clip_id),
        "video_seconds": vinfo.frames / vinfo.fps,
        "video_frames": int(vinfo.frames),
        "prompt_audio_path": layout.prompt_rel(clip.clip_id),
        "prompt_text": "",
        "prompt_phonemes": [],
        "prompt_phoneme_frames": [],
        "cot": "",
        "rejected": "[]",
        "source": source,
    }


def _assign_prompts(rows: list[dict[str, Any]], layout: CorpusLayout) -> None:
    """Give each clip the next utterance of its speaker (by clip id) as timbre prompt.

    A speaker with a single clip prompts with that clip itself.
    """
    by_speaker: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_speaker[row["speaker"]].append(row)
    for group in by_speaker.values():
        group.sort(key=lambda r: r["clip_id"])
        for i, row in enumerate(group):
            other = group[(i + 1) % len(group)]
            src = layout.resolve(other["audio_path"])
            with atomic_path(layout.resolve(row["prompt_audio_path"])) as tmp:
                shutil.copyfile(src, tmp)
            row["prompt_text"] = other["script"]
            row["prompt_phonemes"] = list(other["phonemes"])
            row["prompt_phoneme_frames"] = list(other["phoneme_frames"])


def copy_video(src: Path, dst: Path, fps: int, crf: int) -> None:
    """Put ``src`` at ``dst`` as a silent mp4 at ``fps``, re-encoding only when needed.

    An mp4 at the right frame rate is copied (remuxed without its audio track
    when it has one: the clip's video must be silent); anything else (GRID's
    mpg, another frame rate) is decoded and re-encoded as h264, the frames
    resampled to ``fps`` by nearest neighbour.
    """
    from dubops.video import probe_video, read_video, write_video

    info = probe_video(src)
    if src.suffix.lower() == ".mp4" and abs(info.fps - fps) < 0.01:
        if info.has_audio:
            _remux_video_only(src, dst)
        else:
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
        return
    import numpy as np

    images, src_fps = read_video(src)
    n_out = max(1, round(len(images) * fps / src_fps))
    pick = np.minimum((np.arange(n_out) * src_fps / fps).astype(int), len(images) - 1)
    images = images[pick]
    h, w = images.shape[1] - images.shape[1] % 2, images.shape[2] - images.shape[2] % 2
    write_video(dst, np.ascontiguousarray(images[:, :h, :w]), fps, crf=crf)


def _remux_video_only(src: Path, dst: Path) -> None:
    import av

    with (
        av.open(str(src)) as inp,
        atomic_path(dst) as tmp,
        av.open(str(tmp), "w", format="mp4") as out,
    ):
        in_stream = inp.streams.video[0]
        stream = out.add_stream_from_template(in_stream)
        for packet in inp.demux(in_stream):
            if packet.dts is None:  # the demuxer's flush packet
                continue
            packet.stream = stream
            out.mux(packet)
