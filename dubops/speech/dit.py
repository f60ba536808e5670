"""The F5-TTS v1 DiT backbone: noisy mel + masked prompt mel + text -> velocity.

Parameter names and shapes match F5-TTS (``f5_tts.model.backbones.dit.DiT``) so
``F5TTS_v1_Base`` loads with ``strict=True`` (:mod:`dubops.speech.checkpoints`);
``tests/parity`` checks outputs against the reference. Text ids follow F5's
convention: ``-1`` pads, the embedding table has a filler row 0 (``ids + 1``).

Two text modes share this network (see :mod:`dubops.speech.text_align`):
``unaligned`` feeds the character/phoneme sequence padded with fillers to the mel
length (F5); ``aligned`` feeds each phoneme repeated for its frames, so the text
already has the mel's length.

For sampling, :meth:`DiT.prepare` computes once what every ODE step reuses (the
text embedding and its share of the input projection, rotary angles), and
:meth:`DiT.step` runs only the part that depends on the noisy mel and time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dubops.speech.layers import (
    AdaLayerNormFinal,
    ConvNeXtV2Block,
    ConvPositionEmbedding,
    DiTBlock,
    RotaryEmbedding,
    TimestepEmbedding,
    sinusoidal_table,
)
from dubops.speech.settings import DiTConfig


class TextEmbedding(nn.Module):
    """Token ids -> embeddings of the mel's length, refined by ConvNeXt blocks."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.text_embed = nn.Embedding(config.text_num_embeds + 1, config.text_dim)
        self.refine = config.conv_layers > 0
        if self.refine:
            table = sinusoidal_table(config.text_dim, config.text_max_positions)
            self.register_buffer("freqs_cis", table, persistent=False)
            self.text_blocks = nn.Sequential(
                *[
                    ConvNeXtV2Block(config.text_dim, config.text_dim * 2)
                    for _ in range(config.conv_layers)
                ]
            )

    def forward(
        self, text: torch.Tensor, lengths: torch.Tensor | int, drop_text: bool = False
    ) -> torch.Tensor:
        """``text (b, nt)`` with -1 padding, ``lengths`` per-sample mel frames -> (b, n, e)."""
        ids = text + 1  # 0 becomes the filler / padding row
        per_sample = torch.is_tensor(lengths)
        n = int(lengths.max()) if per_sample else int(lengths)
        ids = ids[:, :n]
        ids = nn.functional.pad(ids, (0, n - ids.shape[1]), value=0)
        valid = None
        if per_sample:
            valid = torch.arange(n, device=ids.device)[None, :] < lengths.to(ids.device)[:, None]
            ids = ids.masked_fill(~valid, 0)
        filler = ids == 0
        if drop_text:
            ids = torch.zeros_like(ids)
        emb = self.text_embed(ids)
        if valid is not None:
            emb = emb.masked_fill(~valid.unsqueeze(-1), 0.0)
        if not self.refine:
            return emb
        pos = self.freqs_cis[:n]
        if valid is not None:
            pos = pos.unsqueeze(0) * valid.unsqueeze(-1).to(pos.dtype)
        emb = emb + pos
        # Fillers stay zero through every block so they carry no content. As in F5,
        # a dropped text keeps the real text's filler mask (only its ids are blanked).
        emb = emb.masked_fill(filler.unsqueeze(-1), 0.0)
        for block in self.text_blocks:
            emb = block(emb).masked_fill(filler.unsqueeze(-1), 0.0)
        return emb


class InputEmbedding(nn.Module):
    """Concatenate noisy mel, prompt mel and text; project; add conv positions."""

    def __init__(self, mel_dim: int, text_dim: int, dim: int) -> None:
        super().__init__()
        self.mel_dim = mel_dim
        self.proj = nn.Linear(mel_dim * 2 + text_dim, dim)
        self.conv_pos_embed = ConvPositionEmbedding(dim)

    def forward(
        self,
        x: torch.Tensor,
        cond: torch.Tensor,
        text_emb: torch.Tensor,
        drop_audio_cond: bool = False,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if drop_audio_cond:
            cond = torch.zeros_like(cond)
        h = self.proj(torch.cat((x, cond, text_emb), dim=-1))
        return self.conv_pos_embed(h, mask=mask) + h

    def static_part(self, cond: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """Prompt and text share of the projection, fixed across ODE steps."""
        w = self.proj.weight
        return cond @ w[:, self.mel_dim : 2 * self.mel_dim].T + (
            text_emb @ w[:, 2 * self.mel_dim :].T + self.proj.bias
        )

    def from_static(
        self, x: torch.Tensor, static: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        h = x @ self.proj.weight[:, : self.mel_dim].T + static
        return self.conv_pos_embed(h, mask=mask) + h


# (h, t_emb, mask, rope) -> residuals added after the first blocks (ControlNet).
Control = Callable[
    [torch.Tensor, torch.Tensor, "torch.Tensor | None", torch.Tensor], list[torch.Tensor]
]


@dataclass
class PreparedInputs:
    """What :meth:`DiT.prepare` caches for an ODE solve (batch already expanded)."""

    static: torch.Tensor  # (B, n, d) prompt/text share of the input projection
    rope: torch.Tensor  # (1, n, dim_head)
    mask: torch.Tensor | None  # (B, n) valid frames, None when all are valid
    repeats: int  # how many condition variants are stacked along the batch


class DiT(nn.Module):
    """Velocity network of conditional flow matching (F5-TTS v1 layout)."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = config
        self.dim = config.dim
        self.time_embed = TimestepEmbedding(config.dim)
        self.text_embed = TextEmbedding(config)
        self.input_embed = InputEmbedding(config.mel_dim, config.text_dim, config.dim)
        self.rotary_embed = RotaryEmbedding(config.dim_head)
        self.transformer_blocks = nn.ModuleList(
            [
                DiTBlock(
                    config.dim,
                    config.heads,
                    config.dim_head,
                    config.ff_mult,
                    config.dropout,
                    config.mask_padding_keys,
                )
                for _ in range(config.depth)
            ]
        )
        self.norm_out = AdaLayerNormFinal(config.dim)
        self.proj_out = nn.Linear(config.dim, config.mel_dim)
        self._zero_init()

    def _zero_init(self) -> None:
        # AdaLN-zero: every block starts as the identity and the output as zero.
        for block in self.transformer_blocks:
            nn.init.zeros_(block.attn_norm.linear.weight)
            nn.init.zeros_(block.attn_norm.linear.bias)
        for layer in (self.norm_out.linear, self.proj_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def embed_inputs(
        self,
        x: torch.Tensor,
        cond: torch.Tensor,
        text: torch.Tensor,
        mask: torch.Tensor | None = None,
        drop_audio_cond: bool = False,
        drop_text: bool = False,
    ) -> torch.Tensor:
        """The hidden sequence entering the first block (b, n, d)."""
        lengths = mask.sum(dim=1) if mask is not None else x.shape[1]
        text_emb = self.text_embed(text, lengths, drop_text=drop_text)
        return self.input_embed(x, cond, text_emb, drop_audio_cond=drop_audio_cond, mask=mask)

    def run_blocks(
        self,
        h: torch.Tensor,
        t: torch.Tensor,
        mask: torch.Tensor | None,
        rope: torch.Tensor,
        residuals: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Blocks, final norm and projection; ``residuals[i]`` is added after block i."""
        for i, block in enumerate(self.transformer_blocks):
            h = block(h, t, mask=mask, rope=rope)
            if residuals is not None and i < len(residuals):
                h = h + residuals[i]
        return self.proj_out(self.norm_out(h, t))

    def forward(
        self,
        x: torch.Tensor,
        cond: torch.Tensor,
        text: torch.Tensor,
        time: torch.Tensor,
        mask: torch.Tensor | None = None,
        drop_audio_cond: bool = False,
        drop_text: bool = False,
        control: Control | None = None,
    ) -> torch.Tensor:
        """Velocity (b, n, mel_dim) for noisy ``x``, prompt ``cond`` (b, n, mel_dim), ``text``.

        ``control(h, t, mask, rope)`` (a ControlNet branch) sees the embedded input
        and returns residuals added after the first blocks.
        """
        if time.ndim == 0:
            time = time.repeat(x.shape[0])
        t = self.time_embed(time)
        h = self.embed_inputs(x, cond, text, mask, drop_audio_cond, drop_text)
        rope = self.rotary_embed.angles(x.shape[1])
        residuals = control(h, t, mask, rope) if control is not None else None
        return self.run_blocks(h, t, mask, rope, residuals)

    # -- sampling fast path -------------------------------------------------

    def prepare(
        self,
        cond: torch.Tensor,
        text: torch.Tensor,
        mask: torch.Tensor | None,
        variants: list[tuple[bool, bool]],
    ) -> PreparedInputs:
        """Cache the step-independent inputs for each ``(drop_audio, drop_text)`` variant.

        Variants are stacked along the batch (variant-major), so one forward pass
        per ODE step evaluates every guidance branch.
        """
        n = cond.shape[1]
        lengths = mask.sum(dim=1) if mask is not None else n
        statics = []
        text_cache: dict[bool, torch.Tensor] = {}
        for drop_audio, drop_text in variants:
            if drop_text not in text_cache:
                text_cache[drop_text] = self.text_embed(text, lengths, drop_text=drop_text)
            c = torch.zeros_like(cond) if drop_audio else cond
            statics.append(self.input_embed.static_part(c, text_cache[drop_text]))
        repeats = len(variants)
        full_mask = None if mask is None else mask.repeat(repeats, 1)
        return PreparedInputs(
            static=torch.cat(statics, dim=0),
            rope=self.rotary_embed.angles(n),
            mask=full_mask,
            repeats=repeats,
        )

    def step(
        self,
        x: torch.Tensor,
        t_emb: torch.Tensor,
        prepared: PreparedInputs,
        control: Control | None = None,
    ) -> torch.Tensor:
        """Velocity for every variant: ``x (b, n, m)`` -> ``(repeats * b, n, m)``."""
        xs = x.repeat(prepared.repeats, 1, 1) if prepared.repeats > 1 else x
        h = self.input_embed.from_static(xs, prepared.static, prepared.mask)
        residuals = None
        if control is not None:
            residuals = control(h, t_emb, prepared.mask, prepared.rope)
        return self.run_blocks(h, t_emb, prepared.mask, prepared.rope, residuals)
