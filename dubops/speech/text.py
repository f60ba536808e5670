"""Script text -> the phoneme names the corpus uses (espeak-ng, pauses as ``_``).

Normalisation is an automatic fix, logged: Unicode compatibility forms are
decomposed (NFKD, so "café" reads "cafe" and "…" reads "..."), curly quotes and
dashes become their ASCII forms, and characters espeak cannot voice sensibly
(emoji, markup such as ``* _ [ ] < >``, other scripts) are dropped with a
warning that names them. A script with nothing speakable left is an error.

Phoneme naming mirrors ``dubops.data.synthetic._phoneme_frames``: espeak's
pause events (``_``, ``_:``, ``_!`` ...) are all ``_``, consecutive pauses are
merged, and a pause is prepended when speech starts at least half a mel frame
into the audio. :func:`merge_pauses` is that rule, usable by the corpus builder.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dubops.errors import DubOpsError
from dubops.speech.espeak import EspeakSynthesizer, Prosody

if TYPE_CHECKING:
    from dubops.config import AudioConfig

logger = logging.getLogger(__name__)

PAUSE = "_"

# Typographic forms that NFKD leaves alone, mapped to what espeak reads.
_ASCII_FORMS = str.maketrans(
    dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'")
    | dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"')
    | dict.fromkeys("\u2010\u2011\u2212", "-")
    # Dashes between words are a pause ("yes - no"), not a hyphenated word.
    | dict.fromkeys("\u2012\u2013\u2014\u2015", " - ")
)
# Punctuation espeak turns into prosody, and symbols it reads as words (50%, &, $).
_SPEAKABLE_PUNCT = frozenset(".,!?;:'\"()-&%$+=@#/")


class ScriptError(DubOpsError, ValueError):
    """A ``script`` that cannot be spoken (empty, or nothing speakable in it)."""


def _speakable(char: str) -> bool:
    return (char.isascii() and char.isalnum()) or char.isspace() or char in _SPEAKABLE_PUNCT


def _char_name(char: str) -> str:
    return unicodedata.name(char, f"U+{ord(char):04X}")


def normalize_script(text: str) -> str:
    """The script as espeak should read it; dropped characters are logged.

    Raises:
        ScriptError: the script is empty or only whitespace, or nothing speakable
            (no letter or digit) is left after normalisation.
    """
    if not text or not text.strip():
        raise ScriptError("script is empty; give the line to dub as plain text in `script`")
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII_FORMS))
    # NFKD splits accents into combining marks: dropping those is the accent fix.
    decomposed = "".join(c for c in decomposed if not unicodedata.combining(c))
    dropped = sorted({c for c in decomposed if not _speakable(c)})
    if dropped:
        names = ", ".join(f"{c!r} ({_char_name(c)})" for c in dropped)
        logger.warning("script: dropped characters espeak cannot speak: %s", names)
    kept = "".join(c if _speakable(c) else " " for c in decomposed)
    kept = re.sub(r"\s+", " ", kept).strip()
    if not any(c.isalnum() for c in kept):
        raise ScriptError(
            f"script {text!r} has nothing speakable (no letters or digits after normalisation); "
            "write the line in English letters in `script`"
        )
    return kept


def merge_pauses(
    names: Sequence[str], frames: Sequence[int] | None = None
) -> tuple[list[str], list[int]]:
    """espeak event names -> corpus names: every pause ``_``, runs of pauses merged.

    Args:
        names: espeak phoneme mnemonics; pauses start with ``_``.
        frames: optional per-phoneme durations, summed where pauses merge.

    Returns:
        ``(names, frames)``; frames are zeros when none were given.
    """
    frames = list(frames) if frames is not None else [0] * len(names)
    if len(frames) != len(names):
        raise ValueError(f"{len(names)} phoneme names but {len(frames)} durations")
    out_names: list[str] = []
    out_frames: list[int] = []
    for name, f in zip(names, frames, strict=True):
        name = PAUSE if name.startswith(PAUSE) else name
        if name == PAUSE and out_names and out_names[-1] == PAUSE:
            out_frames[-1] += int(f)
        else:
            out_names.append(name)
            out_frames.append(int(f))
    return out_names, out_frames


def phonemize(
    text: str,
    voice: str = "en-us",
    prosody: Prosody | None = None,
    audio: AudioConfig | None = None,
) -> list[str]:
    """The phoneme names espeak speaks for ``text``, named as the corpus names them.

    Args:
        text: the script; normalised with :func:`normalize_script` first.
        voice: espeak voice with optional variant, e.g. ``"en-us+f2"``.
        prosody: espeak settings; rate and word gap move pauses and even change
            espeak's reductions, so a clip's own settings reproduce its phonemes.
        audio: the mel front end deciding the leading pause (half a hop);
            ``AudioConfig()`` when not given.

    Raises:
        ScriptError: from :func:`normalize_script`.
    """
    if audio is None:
        from dubops.config import AudioConfig

        audio = AudioConfig()
    utt = EspeakSynthesizer.shared().synthesize(normalize_script(text), voice, prosody or Prosody())
    names = list(utt.phonemes)
    # The corpus counts silence before the first phoneme as a pause once it
    # rounds to at least one mel frame at the target rate.
    first = utt.starts[0] * audio.sample_rate / utt.sample_rate / audio.hop_length if names else 1
    if round(first) > 0:
        names = [PAUSE, *names]
    return merge_pauses(names)[0]
