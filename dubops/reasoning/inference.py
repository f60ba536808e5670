"""``Reasoner``: the one object that reasons about clips for the pipeline, servers and eval.

Batched, greedy by default, capped new tokens, KV cache. A clip is given as
frames (uint8 ``(n, h, w, 3)``) or a video path; each answer is parsed
strictly. When an answer breaks the contract the caller asks
:meth:`Reasoner.conclusion_for` for the documented fallback, which is counted
(``fallbacks``) so a dashboard can show how often it happened.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dubops.reasoning.clip_images import clip_images, images_per_clip, read_clip_images
from dubops.reasoning.parser import Conclusion, ReasoningParseError, parse_answer
from dubops.reasoning.prompts import build_prompt
from dubops.reasoning.settings import ReasonerConfig

# The fallback when an answer cannot be parsed: a monologue (one on-screen
# speaker, the commonest case a dubbing request has) in a neutral adult voice.
FALLBACK_CONCLUSION = Conclusion("monologue", "female", "adult", "neutral")

ClipInput = np.ndarray | str | Path


@dataclass(frozen=True)
class ReasoningResult:
    """One clip's answer: raw text, the parsed conclusion (None if unparsed), timing."""

    text: str
    conclusion: Conclusion | None
    parse_ok: bool
    error: str | None
    latency: float  # seconds of the batch this clip was in, divided by its size
    new_tokens: int


class Reasoner:
    """A trained reasoner and its processor, ready to answer."""

    def __init__(
        self, model: Any, processor: Any, config: ReasonerConfig, lookahead: int = 8
    ) -> None:
        from dubops.reasoning.drafting import AnswerDraft

        self.model = model
        self.processor = processor
        self.config = config
        self.fallbacks = 0
        # One greedy clip at a time checks up to ``lookahead`` tokens guessed from
        # earlier answers per pass (dubops.reasoning.drafting); 0 decodes token by token.
        self.lookahead = lookahead
        self.draft = AnswerDraft()
        self.passes = 0  # forward passes of the decoder, for benchmarks

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> Reasoner:
        from dubops.reasoning.model import load_reasoner

        return cls(*load_reasoner(model_dir))

    def images(self, clip: ClipInput) -> list[Any]:
        c = self.config
        if isinstance(clip, np.ndarray):
            return clip_images(clip, c.keyframes, c.motion, c.image_size, c.motion_gain)
        return read_clip_images(clip, c.keyframes, c.motion, c.image_size, c.motion_gain)

    def prompt(self, script: str) -> str:
        token = getattr(self.processor, "image_token", "<image>")
        return build_prompt(
            script, token, images_per_clip(self.config.keyframes, self.config.motion)
        )

    def reason(
        self,
        clips: Sequence[ClipInput],
        scripts: Sequence[str],
        batch_size: int = 8,
        max_new_tokens: int | None = None,
        do_sample: bool = False,
        temperature: float = 1.0,
        images: Sequence[list[Any]] | None = None,
    ) -> list[ReasoningResult]:
        """Answer each (clip, script); ``images`` skips reading the clips when given."""
        if len(clips) != len(scripts):
            raise ValueError(f"{len(clips)} clips but {len(scripts)} scripts")
        results: list[ReasoningResult] = []
        for start in range(0, len(clips), batch_size):
            stop = start + batch_size
            batch_images = (
                list(images[start:stop])
                if images is not None
                else [self.images(c) for c in clips[start:stop]]
            )
            results += self._generate(
                batch_images, scripts[start:stop], max_new_tokens, do_sample, temperature
            )
        return results

    def _generate(
        self,
        images: list[list[Any]],
        scripts: Sequence[str],
        max_new_tokens: int | None,
        do_sample: bool,
        temperature: float,
    ) -> list[ReasoningResult]:
        import torch

        tokenizer = self.processor.tokenizer
        began = time.perf_counter()
        enc = self.processor(
            images=[im for clip in images for im in clip],
            text=[self.prompt(s) for s in scripts],
            padding=True,
            padding_side="left",
            return_tensors="pt",
            add_special_tokens=False,
        )
        device = next(self.model.parameters()).device
        enc = {k: v.to(device) for k, v in enc.items()}
        limit = max_new_tokens or self.config.max_new_tokens
        sampling = {"do_sample": True, "temperature": temperature} if do_sample else {}
        if len(scripts) == 1 and not do_sample and self.lookahead > 0:
            from dubops.reasoning.drafting import greedy_with_drafts

            tokens, passes = greedy_with_drafts(
                self.model, enc, self.draft, limit, tokenizer.eos_token_id, self.lookahead
            )
            new = torch.tensor([tokens])
        else:
            with torch.no_grad():
                out = self.model.generate(
                    **enc,
                    max_new_tokens=limit,
                    use_cache=True,
                    eos_token_id=tokenizer.eos_token_id,
                    pad_token_id=tokenizer.pad_token_id,
                    **({"do_sample": False} | sampling),
                )
            new = out[:, enc["input_ids"].shape[1] :]
            passes = new.shape[1]
        self.passes += passes
        if not do_sample:  # greedy answers only: a sampled one would teach wrong guesses
            lead = self.draft.context
            for prompt, row in zip(enc["input_ids"], new, strict=True):
                answer = row[row != tokenizer.pad_token_id].tolist()
                self.draft.learn(prompt[-lead:].tolist() + answer)
        latency = (time.perf_counter() - began) / len(scripts)
        results = []
        for row in new:
            real = row[row != tokenizer.pad_token_id]
            length = int((real != tokenizer.eos_token_id).sum())
            text = tokenizer.decode(real, skip_special_tokens=True).strip()
            try:
                conclusion, error = parse_answer(text), None
            except ReasoningParseError as exc:
                conclusion, error = None, str(exc)
            results.append(ReasoningResult(text, conclusion, error is None, error, latency, length))
        return results

    def reason_one(self, clip: ClipInput, script: str) -> ReasoningResult:
        """One clip (frames or a video path) and its script."""
        return self.reason([clip], [script])[0]

    def conclusion_for(self, result: ReasoningResult) -> Conclusion:
        """The parsed conclusion, or :data:`FALLBACK_CONCLUSION` (counted in ``fallbacks``)."""
        if result.conclusion is not None:
            return result.conclusion
        self.fallbacks += 1
        return FALLBACK_CONCLUSION
