"""Greedy decoding that checks several guessed tokens per forward pass.

Why: one clip's answer is ~140 tokens of chain of thought, and decoding it one
token per pass reads every weight of the language model each time (the passes
are memory-bound: 8 tokens cost about what 1 does). The answers are mostly
template ("Step 1: There is one person in the video. Step 2: ..."), so the
reasoner's own earlier answers guess the next tokens well. :class:`AnswerDraft`
remembers, for every run of ``context`` tokens it has seen in an answer, the
token that followed; :func:`greedy_with_drafts` extends the answer with the
chain of such guesses and keeps the longest prefix the model itself would have
chosen, plus the model's own token where they part. The answer is therefore the
model's greedy answer, token for token (up to the float rounding of scoring a
few positions at once instead of one); only the number of passes drops.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import torch


class AnswerDraft:
    """Next-token guesses learned from earlier answers (thread-safe, bounded)."""

    def __init__(self, context: int = 3, max_entries: int = 200_000) -> None:
        self.context = context
        self.max_entries = max_entries
        self._next: dict[tuple[int, ...], int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._next)

    def learn(self, tokens: Sequence[int]) -> None:
        """Remember which token followed each ``context``-token run of an answer."""
        n = self.context
        with self._lock:
            for i in range(n, len(tokens)):
                if len(self._next) >= self.max_entries:
                    return
                self._next[tuple(tokens[i - n : i])] = int(tokens[i])

    def propose(self, tokens: Sequence[int], count: int) -> list[int]:
        """Up to ``count`` guessed tokens after ``tokens`` (fewer where the chain ends)."""
        n = self.context
        if len(tokens) < n:
            return []
        window = list(tokens[-n:])
        out: list[int] = []
        while len(out) < count:
            guess = self._next.get(tuple(window))
            if guess is None:
                break
            out.append(guess)
            window = [*window[1:], guess]
        return out


@torch.no_grad()
def greedy_with_drafts(
    model: Any,
    inputs: dict[str, torch.Tensor],
    draft: AnswerDraft,
    max_new_tokens: int,
    eos_token_id: int,
    lookahead: int = 8,
) -> tuple[list[int], int]:
    """One prompt's greedy answer (``inputs`` of batch size 1) and the passes it took.

    The prompt pass fills the KV cache; each later pass feeds the last chosen
    token plus up to ``lookahead`` guesses, accepts the guesses the model agrees
    with, and crops the cache back to what was accepted. Guesses start from the
    prompt's last tokens, so the draft should learn answers with that lead
    (:meth:`AnswerDraft.learn` of ``lead + answer``).
    """
    out = model(**inputs, use_cache=True)
    cache = out.cache
    chosen = int(out.logits[0, -1].argmax())
    seen = int(inputs["input_ids"].shape[1])
    lead = inputs["input_ids"][0, -draft.context :].tolist()  # the prompt's fixed ending
    answer: list[int] = []
    passes = 1
    while True:
        answer.append(chosen)
        if chosen == eos_token_id or len(answer) >= max_new_tokens:
            return answer, passes
        count = min(lookahead, max_new_tokens - len(answer))
        guesses = draft.propose(lead + answer, count)
        step = torch.tensor([[chosen, *guesses]], dtype=torch.long)
        mask = torch.ones(1, seen + step.shape[1], dtype=torch.long)
        out = model(input_ids=step, attention_mask=mask, cache=cache, use_cache=True)
        cache, passes = out.cache, passes + 1
        predicted = out.logits[0].argmax(-1).tolist()
        agreed = 0
        while agreed < len(guesses) and guesses[agreed] == predicted[agreed]:
            answer.append(guesses[agreed])
            agreed += 1
            if answer[-1] == eos_token_id or len(answer) >= max_new_tokens:
                return answer, passes
        chosen = predicted[agreed]
        seen += 1 + agreed
        if agreed < len(guesses):
            cache.crop(agreed - len(guesses))  # drop the guesses the model turned down
