"""Duration fit: how far a dub's length is from the slot it must fill."""

from __future__ import annotations


def duration_fit(gen_seconds: float, slot_seconds: float) -> dict:
    """Absolute and relative error of a generated duration against its slot.

    Returns:
        ``abs_error_s`` = |gen - slot| and ``rel_error`` = that / slot.
    """
    if slot_seconds <= 0:
        raise ValueError(f"slot_seconds must be positive, got {slot_seconds}")
    if gen_seconds < 0:
        raise ValueError(f"gen_seconds must be non-negative, got {gen_seconds}")
    abs_error = abs(gen_seconds - slot_seconds)
    return {"abs_error_s": abs_error, "rel_error": abs_error / slot_seconds}
