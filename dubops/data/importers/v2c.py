"""V2C-Animation (Chen et al., 2022) from its published layout into a corpus folder.

Expected source layout (files found by basename anywhere under the folder, as
V2C keeps ``<movie>/<basename>.wav`` style sub-folders)::

    <source>/train.txt, val.txt (or valid.txt / dev.txt), test.txt
        lines ``basename|speaker|phones|text``; phones space-separated, with or
        without ``{...}`` braces (FastSpeech2 style); ``sil``/``sp``/``spn`` -> ``_``
    <source>/**/<basename>.wav     target speech (any rate; resampled to 24 kHz mono)
    <source>/**/<basename>.mp4     the clip's video (.avi/.mkv/.mov/.mpg are re-encoded)
    <source>/emotions.txt          optional ``basename|emotion``
    <source>/speaker_info.txt      optional ``speaker|gender|age``
    <source>/scenes.txt            optional ``basename|scene_type|num_people|talker_index``

Defaults where the release has no label (documented choices, recorded in
``corpus.json`` under ``defaults``):

* emotion ``neutral``; V2C's names (angry, happy, sad, surprised, ...) are mapped
  onto :data:`dubops.data.schema.EMOTIONS`.
* scene ``monologue`` with one person on screen who talks (``num_people=1``,
  ``talker_index=0``): V2C clips are cut around one visible speaking character.
* gender ``default_gender`` (``male`` unless given) and age ``adult`` for speakers
  missing from ``speaker_info.txt``; the schema has only female/male, so an
  unknown gender must take one of them. The defaulted speakers are listed in
  ``corpus.json`` so they can be annotated later.
* phonemes: the filelist's phones (ARPAbet in the published lists; espeak-ng's
  for lines without phones). V2C publishes no durations, so each clip's mel
  frames are spread evenly over its phonemes: a placeholder alignment that keeps
  ``sum(phoneme_frames) == mel_frames`` until a forced aligner replaces it.
* ``react`` is empty (V2C has no scene order), ``cot`` empty (not synthetic).

Splits: train -> ``train``, val -> ``val``, test -> ``test_s1`` when its speaker
is seen in train or val (V2C setting 1), else ``test_s2`` (setting 2).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from dubops.data import schema
from dubops.data.importers._common import (
    PAUSE,
    Progress,
    Segment,
    SourceClip,
    espeak_phonemes,
    index_media,
    read_speaker_info,
    read_table,
    safe_clip_id,
    write_corpus,
)
from dubops.errors import InputError

if TYPE_CHECKING:
    from dubops.config import AudioConfig, VideoConfig

logger = logging.getLogger(__name__)

# Filelist name -> V2C split; the first existing name of each group is read.
FILELISTS: dict[str, tuple[str, ...]] = {
    "train": ("train.txt",),
    "val": ("val.txt", "valid.txt", "dev.txt"),
    "test": ("test.txt",),
}
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".mpg")
_SILENCES = {"sil", "sp", "spn", "", PAUSE}
EMOTION_SYNONYMS: dict[str, str] = {
    **{e: e for e in schema.EMOTIONS},
    "angry": "anger",
    "disgusted": "disgust",
    "fearful": "fear",
    "scared": "fear",
    "happy": "joy",
    "happiness": "joy",
    "sad": "sadness",
    "surprised": "surprise",
}


def import_v2c(
    source: str | Path,
    out_root: str | Path,
    audio: AudioConfig | None = None,
    video: VideoConfig | None = None,
    default_gender: str = "male",
    default_age: str = "adult",
    workers: int = 2,
    skip_missing: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Read a V2C-Animation folder into the corpus folder ``out_root``.

    Args:
        source: the V2C folder (see the module docstring for the layout).
        out_root: corpus folder to write (created; files of the same clips are replaced).
        audio, video: target formats (defaults: ``AudioConfig()``, ``VideoConfig()``).
        default_gender, default_age: labels of speakers absent from ``speaker_info.txt``.
        workers: threads converting media.
        skip_missing: skip (and log) listed clips without a wav or video instead of failing.
        progress: called with ``(done, total)`` after each clip.

    Returns:
        The path of the written manifest.

    Raises:
        ValueError: the layout is not V2C's (names the missing file or bad line).
    """
    from dubops.config import AudioConfig, VideoConfig

    src = Path(source)
    clips, defaulted = parse_v2c(src, default_gender, default_age, skip_missing)
    info = {
        "source_root": str(src.resolve()),
        "defaults": {
            "gender": default_gender,
            "age": default_age,
            "speakers_defaulted": defaulted,
            "phoneme_frames": "spread evenly over each clip (V2C publishes no durations)",
        },
    }
    return write_corpus(
        clips,
        Path(out_root),
        "v2c",
        audio or AudioConfig(),
        video or VideoConfig(),
        info,
        workers=workers,
        progress=progress,
    )


def parse_v2c(
    src: Path, default_gender: str = "male", default_age: str = "adult", skip_missing: bool = False
) -> tuple[list[SourceClip], list[str]]:
    """The clips of a V2C folder and the speakers whose gender/age were defaulted."""
    if not src.is_dir():
        raise InputError(f"V2C source {src} is not a folder")
    lists = {split: _find_filelist(src, names) for split, names in FILELISTS.items()}
    if not any(lists.values()):
        raise InputError(
            f"no V2C filelist in {src}: expected train.txt, val.txt and/or test.txt "
            "with lines basename|speaker|phones|text"
        )
    entries = {split: read_table(path, 4) if path else [] for split, path in lists.items()}
    seen = {parts[1] for split in ("train", "val") for _, parts in entries[split]}
    emotions = _read_emotions(src / "emotions.txt")
    scenes = _read_scenes(src / "scenes.txt")
    speakers = read_speaker_info(src / "speaker_info.txt")
    wavs = index_media(src, (".wav",))
    videos = index_media(src, VIDEO_SUFFIXES)
    clips: list[SourceClip] = []
    defaulted: set[str] = set()
    for split, rows in entries.items():
        for no, (basename, speaker, phones, text, *_) in rows:
            where = f"{lists[split]}:{no}"
            missing = [
                f"{basename}{kind}"
                for kind, found in ((".wav", wavs), (".mp4", videos))
                if basename not in found
            ]
            if missing:
                msg = f"{where}: clip {basename} has no {' / '.join(missing)} under {src}"
                if skip_missing:
                    logger.warning("skipping: %s", msg)
                    continue
                raise InputError(msg + " (pass skip_missing=True to leave such clips out)")
            gender, age = speakers.get(speaker, (None, None))
            if gender is None or age is None:
                defaulted.add(speaker)
            scene = scenes.get(basename, ("monologue", 1, 0))
            clips.append(
                SourceClip(
                    clip_id=safe_clip_id(basename),
                    split=_split(split, speaker, seen),
                    speaker=speaker,
                    script=text,
                    segments=[Segment(_phones(phones, text))],
                    audio_src=wavs[basename],
                    video_src=videos[basename],
                    gender=gender or default_gender,
                    age=age or default_age,
                    emotion=emotions.get(basename, "neutral"),
                    scene_type=scene[0],
                    num_people=scene[1],
                    talker_index=scene[2],
                )
            )
    if defaulted:
        logger.warning(
            "%d V2C speakers have no speaker_info.txt entry: gender=%s, age=%s assumed",
            len(defaulted),
            default_gender,
            default_age,
        )
    return clips, sorted(defaulted)


def _find_filelist(src: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        for folder in (src, src / "filelists"):
            if (folder / name).is_file():
                return folder / name
    return None


def _split(v2c_split: str, speaker: str, seen: set[str]) -> str:
    if v2c_split != "test":
        return v2c_split
    return "test_s1" if speaker in seen else "test_s2"


def _phones(field: str, text: str) -> list[str]:
    """Phones of a filelist field (``{A B}`` or ``A B``); espeak's when the field is empty."""
    tokens = field.replace("{", " ").replace("}", " ").split()
    phones = [PAUSE if t.lower() in _SILENCES else t for t in tokens]
    if not phones:
        phones = list(espeak_phonemes(text))
    return phones or [PAUSE]


def _read_emotions(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    out = {}
    for no, (basename, label, *_) in read_table(path, 2):
        key = label.strip().lower()
        if key not in EMOTION_SYNONYMS:
            raise InputError(
                f"{path}:{no}: unknown emotion {label!r}; use one of {', '.join(schema.EMOTIONS)}"
            )
        out[basename] = EMOTION_SYNONYMS[key]
    return out


def _read_scenes(path: Path) -> dict[str, tuple[str, int, int]]:
    if not path.is_file():
        return {}
    out = {}
    for no, (basename, scene, people, talker, *_) in read_table(path, 4):
        if scene not in schema.SCENE_TYPES:
            raise InputError(
                f"{path}:{no}: unknown scene type {scene!r}; use one of "
                f"{', '.join(schema.SCENE_TYPES)}"
            )
        try:
            out[basename] = (scene, int(people), int(talker))
        except ValueError:
            raise InputError(f"{path}:{no}: num_people and talker_index must be integers") from None
    return out
