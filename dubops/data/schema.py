"""The corpus manifest: one Parquet row per dubbing clip.

Every corpus (synthetic, V2C-Animation, GRID) is read into this schema, so the
trainers, the footage library and evaluation have one thing to read. Paths are
relative to the corpus folder (see :mod:`dubops.data.layout`).

| column | type | meaning |
| --- | --- | --- |
| clip_id | str | unique id, also the file stem of the clip's media |
| split | str | ``train``, ``val``, ``test_s1`` or ``test_s2`` (V2C settings, below) |
| speaker | str | speaker id |
| gender | str | one of :data:`GENDERS` |
| age | str | one of :data:`AGES` |
| emotion | str | one of :data:`EMOTIONS` |
| scene_type | str | one of :data:`SCENE_TYPES` |
| num_people | int | characters on screen (0-3) |
| talker_index | int | index of the talking character, -1 when nobody on screen talks |
| script | str | the line to speak |
| react | str | the preceding line of the scene (Authentic-Dubber's text-react) |
| phonemes | list[str] | phoneme symbols of the target speech, pauses as ``_`` |
| phoneme_frames | list[int] | duration of each phoneme in mel frames; sums to ``mel_frames`` |
| mel_frames | int | mel frames of the target speech (hop 256 at 24 kHz) |
| audio_path | str | target speech wav (24 kHz mono) |
| audio_seconds | float | its duration |
| video_path | str | silent video mp4 (25 fps) |
| video_seconds | float | its duration |
| video_frames | int | number of video frames |
| prompt_audio_path | str | timbre prompt: another utterance of the same speaker |
| prompt_text | str | the prompt's transcript |
| prompt_phonemes | list[str] | its phonemes |
| prompt_phoneme_frames | list[int] | their durations in mel frames |
| cot | str | chain-of-thought answer in the four tags |
| rejected | str | JSON list of ``{"kind", "text"}`` rejected answers for preference training |
| source | str | ``synthetic``, ``v2c`` or ``grid`` |

Splits follow V2C: ``test_s1`` is setting 1 (test speakers seen in training),
``test_s2`` is setting 2 (test speakers never seen in train or val).
"""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = (
    "anger",
    "disgust",
    "fear",
    "joy",
    "neutral",
    "sadness",
    "surprise",
)
SCENE_TYPES: tuple[str, ...] = ("dialogue", "monologue", "narration")
GENDERS: tuple[str, ...] = ("female", "male")
AGES: tuple[str, ...] = ("child", "adult", "elderly")
SPLITS: tuple[str, ...] = ("train", "val", "test_s1", "test_s2")
REJECTED_KINDS: tuple[str, ...] = ("wrong_count", "wrong_scene", "wrong_attribute", "broken_format")
COT_TAGS: tuple[str, ...] = ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION")

# column -> (kind, required). Kinds: str, int, float, list_str, list_int.
COLUMNS: dict[str, str] = {
    "clip_id": "str",
    "split": "str",
    "speaker": "str",
    "gender": "str",
    "age": "str",
    "emotion": "str",
    "scene_type": "str",
    "num_people": "int",
    "talker_index": "int",
    "script": "str",
    "react": "str",
    "phonemes": "list_str",
    "phoneme_frames": "list_int",
    "mel_frames": "int",
    "audio_path": "str",
    "audio_seconds": "float",
    "video_path": "str",
    "video_seconds": "float",
    "video_frames": "int",
    "prompt_audio_path": "str",
    "prompt_text": "str",
    "prompt_phonemes": "list_str",
    "prompt_phoneme_frames": "list_int",
    "cot": "str",
    "rejected": "str",
    "source": "str",
}

# Label columns and their allowed values (checked by validation).
LABEL_SETS: dict[str, tuple[str, ...]] = {
    "split": SPLITS,
    "gender": GENDERS,
    "age": AGES,
    "emotion": EMOTIONS,
    "scene_type": SCENE_TYPES,
}

# Bounds used by validation.
MIN_AUDIO_SECONDS = 0.3
MAX_AUDIO_SECONDS = 30.0
MAX_PEOPLE = 3
# Audio and video of one clip may differ by at most this (one video frame + rounding).
AV_DURATION_TOLERANCE_S = 0.08
