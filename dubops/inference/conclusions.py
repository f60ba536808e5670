"""The conclusion a clip is dubbed with, and where each of its four fields came from.

The reasoner's parsed answer is the served path. A caller's override wins over
it field by field; an unparsable answer gets the reasoner's documented fallback
for every field the caller did not set. A pipeline without a reasoner (a bare
speech model, ``dubops speak``) takes the overrides, falls back for the rest,
and with no override at all drops the conclusion condition, as training's
guidance dropout does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from dubops.inference.request import CONCLUSION_FIELDS

REASONER, OVERRIDE, FALLBACK, NONE = "reasoner", "override", "fallback", "none"


@dataclass
class ClipConclusion:
    """What one clip is dubbed with (``values`` None: no conclusion condition)."""

    values: dict[str, str] | None
    sources: dict[str, str]
    reasoning_text: str = ""
    parse_ok: bool = True
    parse_error: str | None = None


def merge_conclusion(answer: Any, overrides: dict[str, str], fallback: Any) -> ClipConclusion:
    """Overrides over the reasoner's ``answer`` (a ReasoningResult, or None: no reasoner).

    ``fallback`` is the reasoner's documented fallback Conclusion.
    """
    if answer is None and not overrides:
        return ClipConclusion(None, dict.fromkeys(CONCLUSION_FIELDS, NONE))
    parsed = answer is not None and answer.conclusion is not None
    base = asdict(answer.conclusion) if parsed else asdict(fallback)
    source = REASONER if parsed else FALLBACK
    values = {f: overrides.get(f, base[f]) for f in CONCLUSION_FIELDS}
    sources = {f: OVERRIDE if f in overrides else source for f in CONCLUSION_FIELDS}
    if answer is None:
        return ClipConclusion(values, sources)
    return ClipConclusion(values, sources, answer.text, answer.parse_ok, answer.error)
