"""From phonemes, durations and a prompt mel to the target mel (both text modes).

Aligned mode: the prompt's frames carry the no-text token (a user's prompt needs
no alignment) and each target phoneme is repeated for its frames. Unaligned
mode (F5): prompt and target phoneme ids in sequence, fillers pad to the length.
The prompt frames are cut from the result: only the target is returned.
"""

from __future__ import annotations

import torch

from dubops.speech.cfm import FlowMatching, Guidance
from dubops.speech.data import MODEL_NOTEXT, to_model_ids
from dubops.speech.dit import Control
from dubops.speech.settings import SamplerConfig


def aligned_text(prompt_frames: int, ids: torch.Tensor, durations: torch.Tensor) -> torch.Tensor:
    """``(1, prompt_frames + sum(durations))`` model ids: no-text, then repeated phonemes."""
    target = to_model_ids(torch.repeat_interleave(ids, durations))
    prompt = torch.full((prompt_frames,), MODEL_NOTEXT, dtype=torch.long)
    return torch.cat([prompt, target])[None]


def unaligned_text(prompt_ids: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``(1, p_prompt + p)`` model ids, F5's concatenated prompt and target text."""
    return to_model_ids(torch.cat([prompt_ids, ids]))[None]


@torch.no_grad()
def generate_mel(
    flow: FlowMatching,
    prompt_mel: torch.Tensor,
    text: torch.Tensor,
    target_frames: int,
    sampler: SamplerConfig,
    guidance: Guidance | None = None,
    control: Control | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """``prompt_mel (n_p, m)``, model-id ``text (1, nt)`` -> target mel ``(target_frames, m)``."""
    device = next(flow.parameters()).device
    n_p = prompt_mel.shape[0]
    mel = flow.sample(
        prompt_mel[None].to(device),
        text.to(device),
        n_p + target_frames,
        sampler=sampler,
        seed=seed,
        guidance=guidance,
        control=control,
        exact_duration=True,
    )
    return mel[0, n_p : n_p + target_frames].cpu()
