"""GRID (Cooke et al., 2006) from its published layout into a corpus folder.

Expected source layout, one folder per talker::

    <source>/s1/video/<utt>.mpg (or .mp4)   25 fps face video (mpg is re-encoded to h264)
    <source>/s1/audio/<utt>.wav             speech (25 or 50 kHz; resampled to 24 kHz mono)
    <source>/s1/align/<utt>.align           lines ``start end word``, times in 1/25000 s
                                            (a 3 s sentence ends at 75000); ``sil``/``sp``
                                            are silence
    <source>/speaker_info.txt               optional ``speaker|gender|age``

Each ``.align`` file is one clip (``<speaker>_<utt>``). The script is its
non-silence words; phonemes come from espeak-ng per word (pause symbols
dropped) and each word's aligned span, in mel frames (24 kHz, hop 256), is
spread evenly over its phonemes; silences are ``_``. So the phoneme durations
follow the published word alignment and sum to ``mel_frames``.

Labels: gender from ``speaker_info.txt``, else GRID's published talker table
(16 female, 18 male talkers, :data:`FEMALE_TALKERS`), else ``default_gender``
(``male``; the schema has only female/male) for talkers outside s1-s34; age
``adult`` (GRID's talkers are 18-49); emotion ``neutral`` (read sentences);
scene ``monologue``, one face talking to the camera (``num_people=1``,
``talker_index=0``).

Splits: the ``held_out`` talkers (default LipNet's unseen speakers s1, s2, s20,
s22) -> ``test_s2``; the other talkers' sentences go to ``val`` / ``test_s1`` /
``train`` by a stable hash of the clip id (``val_fraction``, ``test_fraction``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dubops.data.importers._common import (
    PAUSE,
    Progress,
    Segment,
    SourceClip,
    espeak_phonemes,
    read_speaker_info,
    safe_clip_id,
    write_corpus,
)
from dubops.errors import InputError

if TYPE_CHECKING:
    from dubops.config import AudioConfig, VideoConfig

logger = logging.getLogger(__name__)

ALIGN_UNITS_PER_SECOND = 25_000
SILENCE_WORDS = frozenset({"sil", "sp"})
# GRID talker genders as published with the corpus (s21 has no video in the release).
FEMALE_TALKERS = frozenset(
    f"s{i}" for i in (4, 7, 11, 15, 16, 18, 20, 21, 22, 23, 24, 25, 29, 31, 33, 34)
)
KNOWN_TALKERS = frozenset(f"s{i}" for i in range(1, 35))
DEFAULT_HELD_OUT = ("s1", "s2", "s20", "s22")
VIDEO_SUFFIXES = (".mpg", ".mp4")


def import_grid(
    source: str | Path,
    out_root: str | Path,
    audio: AudioConfig | None = None,
    video: VideoConfig | None = None,
    held_out: Sequence[str] = DEFAULT_HELD_OUT,
    val_fraction: float = 0.05,
    test_fraction: float = 0.1,
    default_gender: str = "male",
    workers: int = 2,
    skip_missing: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Read a GRID folder into the corpus folder ``out_root``.

    Args:
        source: the GRID folder (see the module docstring for the layout).
        out_root: corpus folder to write.
        audio, video: target formats (defaults: ``AudioConfig()``, ``VideoConfig()``).
        held_out: talkers whose clips all go to ``test_s2`` (unseen speakers).
        val_fraction, test_fraction: shares of the other talkers' sentences for
            ``val`` and ``test_s1``.
        default_gender: gender of talkers neither in ``speaker_info.txt`` nor s1-s34.
        workers: threads converting media.
        skip_missing: skip (and log) sentences without a wav or video instead of failing.
        progress: called with ``(done, total)`` after each clip.

    Returns:
        The path of the written manifest.

    Raises:
        ValueError: the layout is not GRID's (names the missing folder or file).
    """
    from dubops.config import AudioConfig, VideoConfig

    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise InputError(
            f"val_fraction ({val_fraction}) + test_fraction ({test_fraction}) must be below 1"
        )
    src = Path(source)
    clips = parse_grid(src, held_out, val_fraction, test_fraction, default_gender, skip_missing)
    info = {
        "source_root": str(src.resolve()),
        "held_out": list(held_out),
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "defaults": {"default_gender": default_gender, "age": "adult", "emotion": "neutral"},
    }
    return write_corpus(
        clips,
        Path(out_root),
        "grid",
        audio or AudioConfig(),
        video or VideoConfig(),
        info,
        workers=workers,
        progress=progress,
    )


def parse_grid(
    src: Path,
    held_out: Sequence[str] = DEFAULT_HELD_OUT,
    val_fraction: float = 0.05,
    test_fraction: float = 0.1,
    default_gender: str = "male",
    skip_missing: bool = False,
) -> list[SourceClip]:
    """The clips of a GRID folder, one per ``.align`` file."""
    if not src.is_dir():
        raise InputError(f"GRID source {src} is not a folder")
    talkers = sorted(
        (d for d in src.iterdir() if d.is_dir() and any((d / s).is_dir() for s in _SUBDIRS)),
        key=lambda d: (len(d.name), d.name),
    )
    if not talkers:
        raise InputError(
            f"no GRID talker folders in {src}: expected s1/, s2/, ... each holding "
            "video/ (*.mpg or *.mp4), audio/ (*.wav) and align/ (*.align)"
        )
    info = read_speaker_info(src / "speaker_info.txt")
    held = set(held_out)
    clips: list[SourceClip] = []
    for folder in talkers:
        for sub in _SUBDIRS:
            if not (folder / sub).is_dir():
                raise InputError(f"GRID talker folder {folder} has no {sub}/ ({_SUBDIRS[sub]})")
        speaker = folder.name
        gender, age = info.get(speaker, (None, None))
        if gender is None:
            gender = _published_gender(speaker, default_gender)
        for align in sorted((folder / "align").glob("*.align")):
            clip = _clip(folder, align, speaker, gender, age or "adult", skip_missing)
            if clip is None:
                continue
            clip.split = (
                "test_s2"
                if speaker in held
                else _utterance_split(clip.clip_id, val_fraction, test_fraction)
            )
            clips.append(clip)
    if not clips:
        raise InputError(f"no GRID sentences in {src}: expected <talker>/align/<utt>.align files")
    return clips


_SUBDIRS = {"video": "*.mpg or *.mp4", "audio": "*.wav", "align": "*.align"}


def _clip(
    folder: Path, align: Path, speaker: str, gender: str, age: str, skip_missing: bool
) -> SourceClip | None:
    utt = align.stem
    wav = folder / "audio" / f"{utt}.wav"
    videos = [folder / "video" / f"{utt}{s}" for s in VIDEO_SUFFIXES]
    video = next((v for v in videos if v.is_file()), None)
    missing = ([] if wav.is_file() else [str(wav)]) + ([] if video else [str(videos[0])])
    if missing:
        msg = f"GRID sentence {align} has no {' / '.join(missing)}"
        if skip_missing:
            logger.warning("skipping: %s", msg)
            return None
        raise InputError(msg + " (pass skip_missing=True to leave such sentences out)")
    segments, words = read_align(align)
    return SourceClip(
        clip_id=safe_clip_id(f"{speaker}_{utt}"),
        split="train",
        speaker=speaker,
        script=" ".join(words),
        segments=segments,
        audio_src=wav,
        video_src=video,  # type: ignore[arg-type]  # checked above
        gender=gender,
        age=age,
        emotion="neutral",
        scene_type="monologue",
        num_people=1,
        talker_index=0,
    )


def read_align(path: Path) -> tuple[list[Segment], list[str]]:
    """Segments (a word's espeak phonemes or ``_``, ending at the word's end) and the words."""
    segments: list[Segment] = []
    words: list[str] = []
    for no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            _, end, word = int(parts[0]), int(parts[1]), parts[2]
        except (IndexError, ValueError):
            raise InputError(
                f"{path}:{no}: expected 'start end word' with integer times in 1/25000 s, "
                f"got {line!r}"
            ) from None
        seconds = end / ALIGN_UNITS_PER_SECOND
        if word.lower() in SILENCE_WORDS:
            if segments and segments[-1].phonemes == [PAUSE]:
                segments[-1].end = seconds
            else:
                segments.append(Segment([PAUSE], seconds))
            continue
        words.append(word)
        segments.append(Segment(list(espeak_phonemes(word.lower())) or [PAUSE], seconds))
    if not words:
        raise InputError(f"{path}: no spoken words (only sil/sp)")
    return segments, words


def _published_gender(speaker: str, default: str) -> str:
    if speaker in KNOWN_TALKERS:
        return "female" if speaker in FEMALE_TALKERS else "male"
    logger.warning("GRID talker %s is not in s1-s34: gender %s assumed", speaker, default)
    return default


def _utterance_split(clip_id: str, val_fraction: float, test_fraction: float) -> str:
    """Stable split of a seen talker's sentence: the same id always lands in the same split."""
    u = int(hashlib.sha1(clip_id.encode()).hexdigest()[:8], 16) / 0x1_0000_0000
    if u < test_fraction:
        return "test_s1"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"
