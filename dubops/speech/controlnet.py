"""The ControlNet transformer of DeepDubber stage 2.2 around a frozen DiT.

Trainable copies of the first N DiT blocks read the DiT's embedded input plus
the fused conditions (video, conclusion, optional emotion sequence) through a
zero-initialised projection; each copy's output passes a zero-initialised
linear layer and is added after the matching frozen block. At step 0 every
zero layer outputs 0, so the controlled model equals the pretrained DiT
exactly (tested); training moves only the branch.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from dubops.speech.dit import DiT


def _zero_linear(dim: int) -> nn.Linear:
    layer = nn.Linear(dim, dim)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class ControlNet(nn.Module):
    """Copied blocks + zero projections; produces the residuals for the frozen DiT."""

    def __init__(self, base: DiT, blocks: int) -> None:
        super().__init__()
        if blocks > len(base.transformer_blocks):
            raise ValueError(
                f"speech.controlnet.blocks is {blocks} but the DiT has only "
                f"{len(base.transformer_blocks)} blocks; lower speech.controlnet.blocks"
            )
        dim = base.config.dim
        self.blocks = nn.ModuleList(copy.deepcopy(b) for b in base.transformer_blocks[:blocks])
        self.cond_in = _zero_linear(dim)
        self.zero_out = nn.ModuleList(_zero_linear(dim) for _ in range(blocks))

    def residuals(
        self,
        h: torch.Tensor,
        t: torch.Tensor,
        mask: torch.Tensor | None,
        rope: torch.Tensor,
        condition: torch.Tensor,
    ) -> list[torch.Tensor]:
        """``h (B, n, d)`` the DiT's embedded input, ``condition (B, n, d)`` fused conditions."""
        c = h + self.cond_in(condition)
        out = []
        for block, zero in zip(self.blocks, self.zero_out, strict=True):
            c = block(c, t, mask=mask, rope=rope)
            out.append(zero(c))
        return out

    def control(self, condition: torch.Tensor):
        """A :data:`dubops.speech.dit.Control` closure over a fixed condition tensor."""

        def apply(h, t, mask, rope):
            return self.residuals(h, t, mask, rope, condition[:, : h.shape[1]])

        return apply
