"""Long clips in pieces: cost linear in the clip, memory bounded.

Why: the sampler's attention is quadratic in the frames it sees, and its
activations grow with them, so one pass over a 60 s clip cost 4x per second what
a 3 s clip did and peaked 0.45 GB higher. A plan longer than
``speech.pieces.max_seconds`` is therefore cut at word boundaries (the pause slot
after a word, where the speech is silent or about to be) into pieces of about
equal length, each sampled after the same timbre prompt, as a short clip would be,
with its own slice of the phonemes, durations and ControlNet conditions. The
pieces of every clip in a call are batched together (:func:`sample_plans`
groups them by length), at most ``speech.pieces.batch`` per sampler call, so
memory stays flat however long the clip; the target mels are joined back in order.

A plan no longer than the limit is one piece, sampled exactly as before.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from dubops.speech.synthesis import aligned_text, unaligned_text

if TYPE_CHECKING:
    from dubops.speech.generator import SpeechPlan


def piece_spans(
    durations: torch.Tensor, pause: torch.Tensor | None, max_frames: int
) -> list[tuple[int, int]]:
    """Phoneme index ranges ``[start, stop)`` whose frames are at most ``max_frames``
    where a word boundary allows it, of about equal length.

    Cuts go after a pause phoneme (the slot between words); a stretch with no
    pause within ``max_frames`` is cut at the phoneme boundary nearest the ideal
    point; a single phoneme longer than the limit stays whole.
    """
    frames = [int(d) for d in durations.tolist()]
    total = sum(frames)
    if total <= max_frames or len(frames) < 2:
        return [(0, len(frames))]
    ends = torch.cumsum(torch.tensor(frames), 0).tolist()  # frame offset after phoneme i
    after_pause = (
        set() if pause is None else {i + 1 for i in torch.nonzero(pause).flatten().tolist()}
    )
    spans, start, offset = [], 0, 0
    while total - offset > max_frames:
        ideal = offset + (total - offset) / math.ceil((total - offset) / max_frames)
        # Boundaries b (cut before phoneme b) that keep this piece within the limit.
        fits = [b for b in range(start + 1, len(frames)) if 0 < ends[b - 1] - offset <= max_frames]
        words = [b for b in fits if b in after_pause]
        candidates = words or fits or [start + 1]
        cut = min(candidates, key=lambda b: abs(ends[b - 1] - ideal))
        spans.append((start, cut))
        start, offset = cut, ends[cut - 1]
    spans.append((start, len(frames)))
    return spans


def split_plan(plan: SpeechPlan, max_frames: int | None) -> list[SpeechPlan]:
    """``plan`` as its pieces (itself when it fits, or when it cannot be cut)."""
    if (
        max_frames is None
        or plan.target_frames <= max_frames
        or plan.durations is None
        or plan.phonemes is None
    ):
        return [plan]
    spans = piece_spans(plan.durations, plan.pause, max_frames)
    if len(spans) == 1:
        return [plan]
    n_p = len(plan.prompt_mel)
    prompt_condition = plan.condition[:, :n_p]
    ends = [0, *torch.cumsum(plan.durations, 0).tolist()]
    pieces = []
    for index, (start, stop) in enumerate(spans):
        first, last = int(ends[start]), int(ends[stop])
        ids, durations = plan.phonemes[start:stop], plan.durations[start:stop]
        if plan.speech.text_mode == "aligned":
            text = aligned_text(n_p, ids, durations)
        else:
            text = unaligned_text(ids[:0], ids)
        condition = torch.cat([prompt_condition, plan.condition[:, n_p + first : n_p + last]], 1)
        pieces.append(
            replace(
                plan,
                text=text,
                target_frames=last - first,
                condition=condition,
                seed=plan.seed + index,
                durations=durations,
                phonemes=ids,
            )
        )
    return pieces
