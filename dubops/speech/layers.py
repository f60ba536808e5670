"""Building blocks of the F5-TTS v1 DiT, with the reference's parameter names.

Attribute names (``attn_norm``, ``to_q``, ``ff.ff.0.0`` ...) follow F5-TTS exactly so
a published checkpoint loads with ``strict=True``; the computations follow its
equations operation by operation so outputs match to float rounding (see the
parity test). Shapes: ``b`` batch, ``n`` frames, ``d`` model width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as nnf
from torch import nn


def sinusoidal_table(dim: int, length: int, theta: float = 10000.0) -> torch.Tensor:
    """``(length, dim)`` absolute positions, cosines then sines (F5's text positions)."""
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    angles = torch.outer(torch.arange(length).float(), inv)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class SinusoidalTime(nn.Module):
    """Flow time in [0, 1] to a sinusoidal vector (scaled by 1000 as in DiT)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor, scale: float = 1000.0) -> torch.Tensor:
        half = self.dim // 2
        step = math.log(10000) / (half - 1)
        freqs = torch.exp(torch.arange(half, device=t.device).float() * -step)
        angles = scale * t.unsqueeze(1) * freqs.unsqueeze(0)
        return torch.cat((angles.sin(), angles.cos()), dim=-1)


class TimestepEmbedding(nn.Module):
    """Flow time -> the conditioning vector every AdaLN layer reads."""

    def __init__(self, dim: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.time_embed = SinusoidalTime(freq_dim)
        self.time_mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.time_mlp(self.time_embed(t).to(t.dtype))


class ConvPositionEmbedding(nn.Module):
    """Two grouped convolutions: relative position from the neighbourhood (F5's input)."""

    def __init__(self, dim: int, kernel_size: int = 31, groups: int = 16) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1d = nn.Sequential(
            nn.Conv1d(dim, dim, kernel_size, groups=groups, padding=pad),
            nn.Mish(),
            nn.Conv1d(dim, dim, kernel_size, groups=groups, padding=pad),
            nn.Mish(),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x.transpose(1, 2)  # (b, d, n)
        keep = None if mask is None else mask.unsqueeze(1)
        if keep is not None:
            x = x.masked_fill(~keep, 0.0)
        for layer in self.conv1d:
            x = layer(x)
            # Padding must not leak into valid frames through the next kernel.
            if keep is not None and isinstance(layer, nn.Conv1d):
                x = x.masked_fill(~keep, 0.0)
        return x.transpose(1, 2)


class GRN(nn.Module):
    """Global response normalisation of ConvNeXt V2 (norm over time, per channel)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.norm(x, p=2, dim=1, keepdim=True)
        n = g / (g.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * n) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    """Depthwise conv + pointwise MLP with GRN; F5 refines text embeddings with four."""

    def __init__(self, dim: int, hidden: int, dilation: int = 1) -> None:
        super().__init__()
        pad = dilation * 3
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=pad, groups=dim, dilation=dilation)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.grn = GRN(hidden)
        self.pwconv2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x.transpose(1, 2)).transpose(1, 2)
        h = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(h)))))
        return x + h


class AdaLayerNorm(nn.Module):
    """Time-modulated pre-norm: returns the attention input and the MLP's modulation."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.silu = nn.SiLU()
        self.linear = nn.Linear(dim, dim * 6)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)

    def forward(self, x: torch.Tensor, emb: torch.Tensor):
        mod = self.linear(self.silu(emb))
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = torch.chunk(mod, 6, dim=1)
        x = self.norm(x) * (1 + scale_a[:, None]) + shift_a[:, None]
        return x, gate_a, shift_f, scale_f, gate_f


class AdaLayerNormFinal(nn.Module):
    """The last modulation before the output projection (scale first, then shift)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.silu = nn.SiLU()
        self.linear = nn.Linear(dim, dim * 2)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = torch.chunk(self.linear(self.silu(emb)), 2, dim=1)
        return self.norm(x) * (1 + scale)[:, None, :] + shift[:, None, :]


class FeedForward(nn.Module):
    """Linear -> GELU(tanh) -> dropout -> linear (nested as ``ff.0.0`` / ``ff.2``)."""

    def __init__(self, dim: int, mult: float = 4, dropout: float = 0.0) -> None:
        super().__init__()
        inner = int(dim * mult)
        self.ff = nn.Sequential(
            nn.Sequential(nn.Linear(dim, inner), nn.GELU(approximate="tanh")),
            nn.Dropout(dropout),
            nn.Linear(inner, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff(x)


class RotaryEmbedding(nn.Module):
    """Rotary angles per position; ``inv_freq`` is a saved buffer in F5 checkpoints."""

    def __init__(self, dim: int, base: float = 10000.0) -> None:
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)))

    def angles(self, seq_len: int) -> torch.Tensor:
        """``(1, n, dim)``: each frequency repeated for its interleaved pair."""
        pos = torch.arange(seq_len, device=self.inv_freq.device).float()
        freqs = torch.outer(pos, self.inv_freq)
        return torch.repeat_interleave(freqs, 2, dim=-1).unsqueeze(0)


def apply_rotary(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved channel pairs of ``x (b, h, n, e)`` by ``angles (1, n, e)``."""
    dtype = x.dtype
    x = x.float()
    pairs = x.unflatten(-1, (-1, 2))
    rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    a = angles.unsqueeze(1)
    return (x * a.cos() + rotated * a.sin()).to(dtype)


class Attention(nn.Module):
    """Multi-head self-attention with rotary positions (``to_out`` = linear, dropout)."""

    def __init__(
        self, dim: int, heads: int, dim_head: int, dropout: float = 0.0, mask_keys: bool = False
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.mask_keys = mask_keys  # F5 attends to padding keys; we may mask them
        self.to_q = nn.Linear(dim, inner)
        self.to_k = nn.Linear(dim, inner)
        self.to_v = nn.Linear(dim, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(dropout)])

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, rope: torch.Tensor | None = None
    ) -> torch.Tensor:
        b = x.shape[0]

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, -1, self.heads, t.shape[-1] // self.heads).transpose(1, 2)

        q, k, v = split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x))
        if rope is not None:
            q, k = apply_rotary(q, rope), apply_rotary(k, rope)
        attn_mask = None
        if self.mask_keys and mask is not None:
            attn_mask = mask[:, None, None, :]
        out = nnf.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = out.transpose(1, 2).reshape(b, -1, q.shape[1] * q.shape[-1]).to(q.dtype)
        out = self.to_out[1](self.to_out[0](out))
        if mask is not None:
            out = out.masked_fill(~mask.unsqueeze(-1), 0.0)
        return out


class DiTBlock(nn.Module):
    """AdaLN-zero transformer block: gated attention then gated feed-forward."""

    def __init__(
        self,
        dim: int,
        heads: int,
        dim_head: int,
        ff_mult: float,
        dropout: float,
        mask_keys: bool = False,
    ) -> None:
        super().__init__()
        self.attn_norm = AdaLayerNorm(dim)
        self.attn = Attention(dim, heads, dim_head, dropout, mask_keys)
        self.ff_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForward(dim, ff_mult, dropout)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        mask: torch.Tensor | None = None,
        rope: torch.Tensor | None = None,
    ) -> torch.Tensor:
        h, gate_a, shift_f, scale_f, gate_f = self.attn_norm(x, t)
        x = x + gate_a.unsqueeze(1) * self.attn(h, mask=mask, rope=rope)
        h = self.ff_norm(x) * (1 + scale_f[:, None]) + shift_f[:, None]
        return x + gate_f.unsqueeze(1) * self.ff(h)
