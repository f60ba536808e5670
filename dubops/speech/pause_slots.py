"""A pause slot at every word boundary, so the duration predictor can place silences.

The corpus speaks some lines with a gap between words (emotion prosody: espeak's
word gap) and others without; espeak then writes a pause ``_`` at each boundary,
or none. A script phonemized at inference cannot know which: without slots the
predicted phonemes run on while the talker's mouth closes between words, and
the speech drifts against the lips (81 of the tiny corpus's 119 test clips have
4-9 such gaps). With slots, the script is phonemized with espeak's smallest
word gap (10 ms), which puts ``_`` at every boundary; training inserts the same
slots into the corpus phonemes with 0 frames where the speech ran on; the
predictor then decides each gap's length, 0 included (pauses may get no
frames, :func:`dubops.speech.duration.predict_frames`).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dubops.speech.espeak import Prosody
from dubops.speech.text import PAUSE, phonemize

if TYPE_CHECKING:
    from dubops.config import AudioConfig


def slotted_phonemes(
    script: str, voice: str = "en-us", audio: AudioConfig | None = None
) -> list[str]:
    """The script's phonemes with a pause at every word boundary (espeak word gap 1)."""
    return phonemize(script, voice, prosody=Prosody(word_gap=1), audio=audio)


def insert_pause_slots(
    phonemes: Sequence[str], frames: Sequence[int], slotted: Sequence[str]
) -> tuple[list[str], list[int]]:
    """Corpus phonemes + durations with a 0-frame pause wherever ``slotted`` has one more.

    ``slotted`` is :func:`slotted_phonemes` of the same script; it may differ
    from the corpus phonemes in other ways (the speaker's accent), so the two are
    aligned (difflib) and only pauses that ``slotted`` inserts are copied over;
    a boundary that already has a pause keeps it and its frames.
    """
    if len(phonemes) != len(frames):
        raise ValueError(f"{len(phonemes)} phonemes but {len(frames)} durations")
    names, durations = list(phonemes), [int(f) for f in frames]
    matcher = difflib.SequenceMatcher(a=names, b=list(slotted), autojunk=False)
    out_n: list[str] = []
    out_f: list[int] = []

    def add_slot(after: str | None) -> None:
        # Never next to an existing pause: that pause already is the slot.
        if PAUSE not in ((out_n[-1] if out_n else None), after):
            out_n.append(PAUSE)
            out_f.append(0)

    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        ours, theirs = names[a0:a1], list(slotted[b0:b1])
        following = names[a1] if a1 < len(names) else None
        if tag in ("insert", "replace") and PAUSE not in ours and PAUSE in theirs:
            # A pause the corpus line ran on through, possibly beside an accent's
            # other vowel ("aI2" vs "aI _"): the slot goes on the same side.
            if theirs[0] == PAUSE:
                add_slot(ours[0] if ours else following)
            out_n += ours
            out_f += durations[a0:a1]
            if theirs[-1] == PAUSE and (len(theirs) > 1 or ours):
                add_slot(following)
            continue
        out_n += ours
        out_f += durations[a0:a1]
    return out_n, out_f
