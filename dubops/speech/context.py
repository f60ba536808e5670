"""What the flow model sees as audio context while it trains: ``self``, ``prompt`` or ``mixed``.

F5-TTS trains by infilling (``self``): 70-100 % of an utterance is hidden and
the rest stays visible, so the visible part carries the target's own prosody,
its emotion included. At inference the visible context is the timbre prompt,
another utterance of the speaker spoken calmly, and a model trained only by
infilling continues that calm prosody whatever the conditions say (issue 23:
emotion accuracy at chance for every system).

``prompt`` trains as we infer: the sequence is the clip's timbre prompt then
the whole clip, the clip is hidden and the loss is on it alone, so the
conclusion, video and footage conditions must carry what the prompt does not.
``mixed`` draws one of the two per sample (even odds). Every mode builds
the same :class:`ContextBatch`; ``self`` samples have no prompt frames
(offset 0) and F5's random span hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from dubops.speech.cfm import lengths_to_mask, random_span_mask

ContextMode = Literal["self", "prompt", "mixed"]
CONTEXT_MODES: tuple[str, ...] = ("self", "prompt", "mixed")


@dataclass
class ContextBatch:
    """One training sequence per sample: ``offsets`` prompt frames, then the clip.

    ``mel (b, n, m)`` and ``text (b, n)`` (model ids, -1 pads) span prompt and
    clip; ``lengths`` counts both; ``hidden (b, n)`` marks the frames the model
    must generate (the loss is taken there and nowhere else).
    """

    mel: torch.Tensor
    text: torch.Tensor
    lengths: torch.Tensor
    offsets: torch.Tensor
    hidden: torch.Tensor

    @property
    def frames(self) -> int:
        return int(self.mel.shape[1])

    def clip_mask(self, clip_lengths: torch.Tensor) -> torch.Tensor:
        """``(b, n)``: the clip's own frames (after the prompt, before the padding)."""
        pos = torch.arange(self.frames, device=self.mel.device)[None, :]
        start = self.offsets[:, None]
        return (pos >= start) & (pos < start + clip_lengths[:, None])


def prompt_draws(mode: str, b: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(b,)`` bool: which samples take the timbre prompt as their context."""
    if mode not in CONTEXT_MODES:
        raise ValueError(f"context {mode!r}: use one of {', '.join(CONTEXT_MODES)}")
    if mode == "self":
        return torch.zeros(b, dtype=torch.bool)
    if mode == "prompt":
        return torch.ones(b, dtype=torch.bool)
    return torch.rand(b, generator=generator) < 0.5


def build_context(
    batch: dict,
    use_prompt: torch.Tensor,
    notext_id: int,
    mask_range: tuple[float, float],
    generator: torch.Generator | None = None,
) -> ContextBatch:
    """Prompt-then-clip sequences for the samples in ``use_prompt``, the clip alone for the rest.

    ``batch`` is a collated clip batch with ``prompt_mel (b, np, m)`` and
    ``prompt_lengths`` (needed only when some sample uses its prompt). Aligned
    text (``text (b, n)``, one id per mel frame) moves right with the clip and
    the prompt's frames read ``notext_id``; unaligned text (phoneme ids) stays as
    it is, which is how inference feeds it. A prompt sample hides its whole clip;
    a ``self`` sample hides F5's random ``mask_range`` span of it.
    """
    mel, lengths, text = batch["mel"], batch["mel_lengths"], batch["text"]
    b, n, m = mel.shape
    device = mel.device
    use_prompt = use_prompt.to(device)
    if bool(use_prompt.any()):
        prompt_lengths = batch["prompt_lengths"].to(device)
        offsets = torch.where(use_prompt, prompt_lengths, torch.zeros_like(prompt_lengths))
    else:
        offsets = torch.zeros_like(lengths)
    total = offsets + lengths
    width = int(total.max())
    out_mel = mel.new_zeros(b, width, m)
    aligned = text.shape[1] == n
    out_text = text.new_full((b, width), -1) if aligned else text
    for i in range(b):
        start, size = int(offsets[i]), int(lengths[i])
        if start:
            out_mel[i, :start] = batch["prompt_mel"][i, :start]
            if aligned:
                out_text[i, :start] = notext_id
        out_mel[i, start : start + size] = mel[i, :size]
        if aligned:
            out_text[i, start : start + size] = text[i, :size]
    span = random_span_mask(lengths, *mask_range, generator)[:, :n] & lengths_to_mask(lengths, n)
    hidden = torch.zeros(b, width, dtype=torch.bool, device=device)
    pos = torch.arange(width, device=device)[None, :]
    whole_clip = (pos >= offsets[:, None]) & (pos < total[:, None])
    hidden[use_prompt] = whole_clip[use_prompt]
    self_rows = ~use_prompt
    hidden[self_rows, :n] = span[self_rows]
    return ContextBatch(out_mel, out_text, total, offsets, hidden)


def shift_frames(x: torch.Tensor, offsets: torch.Tensor, width: int) -> torch.Tensor:
    """``(b, n, d)`` -> ``(b, width, d)`` with sample ``i`` moved ``offsets[i]`` frames right.

    Frames before the offset, and past the end, are zero.
    """
    b, n, d = x.shape
    out = x.new_zeros(b, width, d)
    for i in range(b):
        start = int(offsets[i])
        size = min(n, width - start)
        out[i, start : start + size] = x[i, :size]
    return out
