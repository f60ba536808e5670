"""A scene's lines: who says what, when, read from SRT or JSON and checked.

A long video is dubbed line by line. Each :class:`Segment` is one slot of the
video (``start`` to ``end`` in seconds), the speaker who fills it and the line
they say, plus optional overrides of what the model decides itself (the four
conclusion fields) and the sampler seed.

Two formats:

* **SRT** (what subtitle editors write): the speaker opens the text,
  ``ALICE: Where were you?``; a cue's text may span several lines.
* **JSON**: a list (or ``{"segments": [...]}``) of objects with ``start``,
  ``end``, ``speaker``, ``text`` and optionally ``emotion``, ``gender``,
  ``age``, ``scene_type`` and ``seed``.

Every problem is an :class:`InputError` naming the file, the line and the fix:
malformed cues, empty text, a slot that ends before it starts, overlapping
slots, a slot past the video's end, a speaker with no voice, a line too long
for its slot.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from dubops.errors import InputError
from dubops.inference.media import MAX_LETTERS_PER_SECOND
from dubops.inference.request import CONCLUSION_FIELDS, MAX_TARGET_SECONDS

# Shorter slots leave the reasoner a handful of frames and the sampler too few mel
# frames for a word.
MIN_SEGMENT_SECONDS = 0.5
# A slot may end this far past the video's last frame (a subtitle editor rounds to ms).
END_TOLERANCE_SECONDS = 0.05
_SRT_TIME = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})[,.](\d{1,3})$")
_SPEAKER = re.compile(r"^\s*([^:\s][^:]{0,39}?)\s*:\s*(.*)$", re.S)
_JSON_FIELDS = {"start", "end", "speaker", "text", "seed", *CONCLUSION_FIELDS}


@dataclass(frozen=True)
class Segment:
    """One line of a scene: its slot, speaker, text and optional overrides.

    ``number`` is the segment's place in time order (1-based: what the CLI's
    ``--segment N.FIELD=VALUE`` and the review page call it); ``line`` is where
    it starts in its file (0 when it did not come from a file).
    """

    number: int
    start: float
    end: float
    speaker: str
    text: str
    line: int = 0
    overrides: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    # The subtitle's own text when a change replaced what is said: the next line's
    # reasoner still reads this as the preceding line, so re-dubbing one line with a new
    # text redoes that line alone.
    written: str | None = None

    @property
    def cue(self) -> str:
        """What the next line reads as its preceding line (the react cue)."""
        return self.written if self.written is not None else self.text

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def where(self) -> str:
        """How errors point at it: the file's line when known, else its number."""
        return f"line {self.line}" if self.line else f"segment {self.number}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_segments(path: str | Path) -> list[Segment]:
    """The segments of an ``.srt`` or ``.json`` file, in time order (format checks only:
    :func:`check_segments` checks them against the video and the voices)."""
    source = Path(path)
    if not source.is_file():
        raise InputError(f"--subtitles {source}: no such file; give an .srt or .json file")
    try:
        text = source.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"--subtitles {source}: not UTF-8 text; save it as UTF-8") from None
    if source.suffix.lower() == ".json":
        segments = parse_json_segments(text, str(source))
    elif source.suffix.lower() == ".srt":
        segments = parse_srt(text, str(source))
    else:
        raise InputError(
            f"--subtitles {source}: unknown format {source.suffix!r}; give an .srt or .json file"
        )
    return in_time_order(segments, str(source))


def parse_srt(text: str, name: str = "subtitles") -> list[Segment]:
    """SRT cues (``index``, ``start --> end``, text lines), the speaker before a colon."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    segments: list[Segment] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        first = i + 1  # 1-based line of the cue's index
        if not lines[i].strip().isdigit():
            raise InputError(
                f"{name} line {first}: expected a cue number, got {lines[i].strip()[:40]!r}; "
                "each SRT cue is a number, a 'HH:MM:SS,mmm --> HH:MM:SS,mmm' line and its text"
            )
        if i + 1 >= len(lines) or "-->" not in lines[i + 1]:
            raise InputError(
                f"{name} line {first + 1}: expected 'HH:MM:SS,mmm --> HH:MM:SS,mmm' after cue "
                f"{lines[i].strip()}"
            )
        left, right = lines[i + 1].split("-->", 1)
        start = _srt_seconds(left.strip(), name, first + 1)
        end = _srt_seconds(right.strip().split(" ")[0], name, first + 1)
        j = i + 2
        body = []
        while j < len(lines) and lines[j].strip():
            body.append(lines[j].strip())
            j += 1
        speaker, said = _speaker_and_text(" ".join(body), name, first)
        segments.append(Segment(0, start, end, speaker, said, line=first))
        i = j
    return segments


def parse_json_segments(text: str, name: str = "subtitles") -> list[Segment]:
    """A JSON list of ``{start, end, speaker, text, ...}`` (or ``{"segments": [...]}``),
    each item's line found so errors can point at it."""
    try:
        data = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as exc:
        raise InputError(f"{name} line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if isinstance(data, dict) and "segments" in data:
        data = data["segments"]
    if not isinstance(data, list):
        raise InputError(
            f'{name}: expected a list of segments (or {{"segments": [...]}}), got '
            f"{type(data).__name__}"
        )
    starts = _item_lines(text, len(data))
    return [_json_segment(item, name, line) for item, line in zip(data, starts, strict=True)]


def in_time_order(segments: list[Segment], name: str = "subtitles") -> list[Segment]:
    """Sorted by start and numbered 1..n; empty files, empty or inverted slots refused."""
    if not segments:
        raise InputError(f"{name}: no segments; give at least one cue with a speaker and a line")
    for s in segments:
        if s.end <= s.start:
            raise InputError(
                f"{name} {s.where}: ends at {s.end:.3f} s, not after its start {s.start:.3f} s; "
                "give an end later than the start"
            )
    ordered = sorted(segments, key=lambda s: (s.start, s.end))
    return [replace(s, number=n) for n, s in enumerate(ordered, start=1)]


def check_segments(
    segments: list[Segment], video_seconds: float, voices: dict[str, Any], name: str = "subtitles"
) -> None:
    """Refuse what cannot be dubbed into this video with these voices, naming the line."""
    previous: Segment | None = None
    for s in segments:
        if previous is not None and s.start < previous.end - 1e-9:
            raise InputError(
                f"{name} {s.where}: starts at {s.start:.3f} s, before the previous segment "
                f"({previous.where}) ends at {previous.end:.3f} s; slots must not overlap: "
                "move its start or the previous end"
            )
        if s.end > video_seconds + END_TOLERANCE_SECONDS:
            raise InputError(
                f"{name} {s.where}: ends at {s.end:.3f} s, past the video's end "
                f"({video_seconds:.3f} s); end it within the video"
            )
        if s.seconds < MIN_SEGMENT_SECONDS:
            raise InputError(
                f"{name} {s.where}: a {s.seconds:.3f} s slot; give at least "
                f"{MIN_SEGMENT_SECONDS:g} s, or join it to a neighbour"
            )
        if s.seconds > MAX_TARGET_SECONDS:
            raise InputError(
                f"{name} {s.where}: a {s.seconds:.1f} s slot; split it into lines of at most "
                f"{MAX_TARGET_SECONDS:g} s"
            )
        if s.speaker not in voices:
            known = ", ".join(sorted(voices)) or "none"
            raise InputError(
                f"{name} {s.where}: speaker {s.speaker!r} has no voice (given: {known}); add "
                f"--voice {s.speaker}=PROMPT.wav"
            )
        letters = sum(c.isalnum() for c in s.text)
        limit = int(MAX_LETTERS_PER_SECOND * s.seconds)
        if letters > limit:
            raise InputError(
                f"{name} {s.where}: {letters} letters cannot be spoken in its {s.seconds:.2f} s "
                f"slot (at most ~{limit}); shorten the line or lengthen the slot"
            )
        previous = s


def with_changes(segments: list[Segment], changes: dict[int, dict[str, str]]) -> list[Segment]:
    """``segments`` with per-segment changes (``{number: {field: value}}``): ``text``,
    ``speaker``, ``seed`` or a conclusion field; what a re-dub of one line asks for."""
    by_number = {s.number: s for s in segments}
    changed = list(segments)
    for number, fields in changes.items():
        if number not in by_number:
            raise InputError(
                f"--segment {number}: no such segment; the scene has 1 to {len(segments)}"
            )
        s = by_number[number]
        for key, value in fields.items():
            s = _changed(s, key, value)
        changed[number - 1] = s
    return changed


def _changed(s: Segment, key: str, value: str) -> Segment:
    where = f"--segment {s.number}.{key}"
    if key == "text":
        if not value.strip():
            raise InputError(f"{where}: the text is empty; give the line to say")
        return replace(s, text=value.strip(), written=s.cue)
    if key == "speaker":
        return replace(s, speaker=value.strip())
    if key == "seed":
        if not value.strip().isdigit():
            raise InputError(f"{where}={value!r}: give a whole number, 0 or more")
        return replace(s, seed=int(value))
    if key in CONCLUSION_FIELDS:
        return replace(s, overrides=s.overrides | {key: _label(key, value, where)})
    fields = ["text", "speaker", "seed", *CONCLUSION_FIELDS]
    raise InputError(f"{where}: unknown field; change one of {fields}")


def _label(key: str, value: Any, where: str) -> str:
    options = CONCLUSION_FIELDS[key]
    if value not in options:
        raise InputError(f"{where}: {value!r} is not one of {list(options)}")
    return str(value)


def _srt_seconds(stamp: str, name: str, line: int) -> float:
    match = _SRT_TIME.match(stamp)
    if not match:
        raise InputError(
            f"{name} line {line}: {stamp!r} is not a time; write it as HH:MM:SS,mmm "
            "(e.g. 00:01:02,500)"
        )
    h, m, s, ms = match.groups()
    if int(m) > 59 or int(s) > 59:
        raise InputError(f"{name} line {line}: {stamp!r} has minutes or seconds over 59")
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def _speaker_and_text(body: str, name: str, line: int) -> tuple[str, str]:
    if not body.strip():
        raise InputError(f"{name} line {line}: the cue has no text; give 'SPEAKER: the line'")
    match = _SPEAKER.match(body)
    if not match:
        raise InputError(
            f"{name} line {line}: no speaker; start the text with the speaker's name and a "
            f"colon, e.g. 'ALICE: {body.strip()[:30]}'"
        )
    speaker, said = match.group(1).strip(), match.group(2).strip()
    if not said:
        raise InputError(
            f"{name} line {line}: {speaker} says nothing; give the line after the colon"
        )
    return speaker, said


def _json_segment(item: Any, name: str, line: int) -> Segment:
    where = f"{name} line {line}"
    if not isinstance(item, dict):
        raise InputError(f"{where}: a segment must be an object with start, end, speaker, text")
    missing = [k for k in ("start", "end", "speaker", "text") if k not in item]
    if missing:
        raise InputError(
            f"{where}: missing {missing}; each segment needs start, end, speaker, text"
        )
    unknown = sorted(set(item) - _JSON_FIELDS)
    if unknown:
        raise InputError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(_JSON_FIELDS)}")
    times = {}
    for key in ("start", "end"):
        value = item[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InputError(f"{where}: {key} {value!r} is not a time; give seconds, 0 or more")
        times[key] = float(value)
    speaker, text = item["speaker"], item["text"]
    if not isinstance(speaker, str) or not speaker.strip():
        raise InputError(f"{where}: speaker {speaker!r}; give the speaker's name as text")
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{where}: the text is empty; give the line the speaker says")
    seed = item.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InputError(f"{where}: seed {seed!r}; give a whole number, 0 or more")
    overrides = {k: _label(k, item[k], where) for k in CONCLUSION_FIELDS if item.get(k) is not None}
    return Segment(
        0, times["start"], times["end"], speaker.strip(), text.strip(), line, overrides, seed
    )


def _item_lines(text: str, count: int) -> list[int]:
    """The 1-based line where each of a JSON array's ``count`` items starts."""
    decoder = json.JSONDecoder()
    if text.lstrip().startswith("["):
        position = text.index("[") + 1
    else:  # {"segments": [...]}: the array after the key
        position = text.index("[", text.index('"segments"')) + 1
    lines = []
    for _ in range(count):
        while text[position] in " \t\r\n,":
            position += 1
        lines.append(text.count("\n", 0, position) + 1)
        _, position = decoder.raw_decode(text, position)
    return lines
