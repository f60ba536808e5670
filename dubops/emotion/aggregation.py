"""Hierarchical aggregation of the emotion graphs: Authentic-Dubber's equation (1).

    E_beg = Conv1D([H; CA(H, H_beg, H_beg)])
    E_ieg = Conv1D([E_beg; CA(E_beg, H_ieg, H_ieg)])
    E_deg = Conv1D([E_ieg; CA(E_ieg, H_deg, H_deg)])
    E_out = Conv1D([H; E_deg])

``H`` is the frame-rate sequence the speech decoder reads (the paper's
cross-modal aligner output ``H_{t,v,r}``; ours is described in
:mod:`dubops.emotion.conditioner`), ``H_*`` the encoded graph nodes. Each
level's sequence queries that level's nodes by cross-attention (CA) and a
Conv1D over time fuses the concatenation back to 256 channels (the paper's
Conv1D output size). Levels an ablation removes are skipped (e.g. without
retrieval only ``E_beg`` remains before ``E_out``); without hierarchical
aggregation (Table 2 row 12) one CA over all nodes and one Conv1D replace
the chain: ``E_out = Conv1D([H; CA(H, H_all, H_all)])``.

Shapes: ``b`` samples, ``n`` frames, ``m`` nodes, ``d`` = 256.
"""

from __future__ import annotations

import torch
from torch import nn


class CrossAttentionConv(nn.Module):
    """``Conv1D([q; CA(q, nodes, nodes)])``: one level of eq. (1).

    The query is layer-normalised before attention (pre-norm, for stable
    training from the ControlNet's scale); keys and values are the nodes as encoded.
    """

    def __init__(self, dim: int, heads: int, kernel: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.conv = nn.Conv1d(2 * dim, dim, kernel, padding=kernel // 2)

    def forward(self, q: torch.Tensor, nodes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``q (b, n, d)``, ``nodes (b, m, d)``, ``mask (b, m)`` True = real -> ``(b, n, d)``."""
        context, _ = self.attn(
            self.norm(q), nodes, nodes, key_padding_mask=~mask, need_weights=False
        )
        return conv_time(self.conv, torch.cat([q, context], dim=-1))


def conv_time(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A Conv1d over the frame axis of ``(b, n, c)``."""
    return conv(x.transpose(1, 2)).transpose(1, 2)


class HierarchicalAggregation(nn.Module):
    """Eq. (1) over the levels in use; ``hierarchical=False`` is the one-CA ablation."""

    def __init__(
        self,
        dim: int,
        heads: int,
        kernel: int,
        levels: tuple[str, ...],
        hierarchical: bool = True,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(
                f"graph.dim ({dim}) must be divisible by graph.attention_heads ({heads})"
            )
        self.levels = levels
        self.hierarchical = hierarchical
        names = levels if hierarchical else ("all",)
        self.steps = nn.ModuleDict({name: CrossAttentionConv(dim, heads, kernel) for name in names})
        if hierarchical:
            self.out = nn.Conv1d(2 * dim, dim, kernel, padding=kernel // 2)

    def forward(
        self, h: torch.Tensor, nodes: dict[str, tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """``h (b, n, d)``, ``{level: (H_level (b, m, d), mask (b, m))}`` -> ``E_out (b, n, d)``."""
        missing = [level for level in self.levels if level not in nodes]
        if missing:
            raise ValueError(f"aggregation needs the encoded levels {missing}")
        if not self.hierarchical:
            top, mask = nodes[self.levels[-1]]  # the last graph holds every node
            return self.steps["all"](h, top, mask)
        e = h
        for level in self.levels:
            e = self.steps[level](e, *nodes[level])
        return conv_time(self.out, torch.cat([h, e], dim=-1))
