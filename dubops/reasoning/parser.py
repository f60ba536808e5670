"""Strict parser of the reasoner's tagged answer into a :class:`Conclusion`.

The contract (DeepDubber-V1, section 3.2): four tags in order, each closed,
``<SUMMARY>…</SUMMARY><CAPTION>…</CAPTION><REASONING>…</REASONING><CONCLUSION>…</CONCLUSION>``,
and a conclusion body in the fixed form written by :func:`dubops.data.cot.format_conclusion`::

    scene_type=dialogue; gender=female; age=adult; emotion=anger

Anything else raises :class:`ReasoningParseError` saying what is wrong; callers
choose (and count) a fallback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dubops.data.schema import AGES, COT_TAGS, EMOTIONS, GENDERS, SCENE_TYPES
from dubops.errors import DubOpsError

_FIELDS: dict[str, tuple[str, ...]] = {
    "scene_type": SCENE_TYPES,
    "gender": GENDERS,
    "age": AGES,
    "emotion": EMOTIONS,
}
_ANSWER = re.compile(
    r"\s*" + r"\s*".join(rf"<{tag}>(?P<{tag.lower()}>.*?)</{tag}>" for tag in COT_TAGS) + r"\s*",
    re.DOTALL,
)


class ReasoningParseError(DubOpsError, ValueError):
    """The answer breaks the output contract; the message says how."""


@dataclass(frozen=True)
class Conclusion:
    """The reasoner's decision that conditions the speech generator."""

    scene_type: str
    gender: str
    age: str
    emotion: str


def parse_conclusion_body(body: str) -> Conclusion:
    """Read ``scene_type=…; gender=…; age=…; emotion=…``."""
    values: dict[str, str] = {}
    for part in body.split(";"):
        if not part.strip():
            continue
        if "=" not in part:
            raise ReasoningParseError(f"conclusion item {part.strip()!r} is not key=value")
        key, value = (s.strip() for s in part.split("=", 1))
        if key not in _FIELDS:
            raise ReasoningParseError(
                f"conclusion has unknown key {key!r}; expected {list(_FIELDS)}"
            )
        if value not in _FIELDS[key]:
            raise ReasoningParseError(f"conclusion {key}={value!r} is not one of {_FIELDS[key]}")
        values[key] = value
    missing = [k for k in _FIELDS if k not in values]
    if missing:
        raise ReasoningParseError(f"conclusion lacks {missing}")
    return Conclusion(**values)


def parse_answer(text: str) -> Conclusion:
    """Parse a whole tagged answer strictly.

    Raises:
        ReasoningParseError: a tag is missing, unclosed or out of order, or the
            conclusion is unreadable.
    """
    match = _ANSWER.fullmatch(text)
    if match is None:
        positions = {tag: text.find(f"<{tag}>") for tag in COT_TAGS}
        absent = [t for t, p in positions.items() if p < 0]
        if absent:
            raise ReasoningParseError(f"answer lacks the tag(s) {absent}")
        unclosed = [t for t in COT_TAGS if f"</{t}>" not in text]
        if unclosed:
            raise ReasoningParseError(f"answer leaves {unclosed} unclosed")
        raise ReasoningParseError(
            f"answer's tags are out of order or surrounded by text; expected {list(COT_TAGS)}"
        )
    return parse_conclusion_body(match.group("conclusion"))
