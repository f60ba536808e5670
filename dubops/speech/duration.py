"""Phoneme durations: a predictor, its loss, and integer frames that fit a video slot.

The predictor is FastSpeech 2's idea (durations in the log domain, one value
per phoneme) on FastSpeech's feed-forward Transformer blocks (self-attention +
1-D convolution), with two optional conditions:

* a global vector per utterance (``cond_dim``): e.g. the speaker/prompt vector
  and the reasoning conclusion's embedding, concatenated by the caller and
  projected once (a projection of a concatenation is the sum of per-part
  projections, i.e. fusion by addition), added to every phoneme;
* a visual sequence ``(b, t, dv)`` read by cross-attention in every block, so
  the lips' timing in the video can inform each phoneme's length.

Shapes: ``b`` batch, ``p`` phonemes, ``t`` video frames, ``d`` width.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn

from dubops.speech.layers import sinusoidal_table

if TYPE_CHECKING:
    from dubops.speech.settings import DurationConfig

# exp(8) - 1 ~ 3000 frames (32 s) per phoneme: caps the total term's exp.
_MAX_LOG_FRAMES = 8.0


class _Block(nn.Module):
    """Pre-norm self-attention, optional cross-attention to the video, conv feed-forward."""

    def __init__(self, dim: int, heads: int, kernel_size: int, dropout: float, cross: bool) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_norm = nn.LayerNorm(dim) if cross else None
        self.cross_attn = (
            nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True) if cross else None
        )
        self.ff_norm = nn.LayerNorm(dim)
        self.ff_in = nn.Conv1d(dim, 2 * dim, kernel_size, padding=kernel_size // 2)
        self.ff_out = nn.Conv1d(2 * dim, dim, 1)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,  # (b, p, d)
        mask: torch.Tensor,  # (b, p) True on phonemes
        visual: torch.Tensor | None,  # (b, t, d)
        visual_mask: torch.Tensor | None,  # (b, t)
    ) -> torch.Tensor:
        h = self.attn_norm(x)
        h, _ = self.attn(h, h, h, key_padding_mask=~mask, need_weights=False)
        x = x + self.drop(h)
        if self.cross_attn is not None and visual is not None:
            assert self.cross_norm is not None
            pad = None if visual_mask is None else ~visual_mask
            h, _ = self.cross_attn(
                self.cross_norm(x), visual, visual, key_padding_mask=pad, need_weights=False
            )
            x = x + self.drop(h)
        # Zero padding before the kernel so it cannot leak into real phonemes.
        h = self.ff_norm(x).masked_fill(~mask.unsqueeze(-1), 0.0).transpose(1, 2)  # (b, d, p)
        h = self.ff_out(self.drop(nnf.gelu(self.ff_in(h)))).transpose(1, 2)
        return x + self.drop(h)


class DurationPredictor(nn.Module):
    """Phoneme ids (+ conditions) -> ``log(1 + frames)`` per phoneme, 0 on padding."""

    def __init__(
        self,
        vocab_size: int,
        dim: int = 256,
        layers: int = 4,
        heads: int = 4,
        kernel_size: int = 3,
        dropout: float = 0.1,
        cond_dim: int | None = None,
        visual_dim: int | None = None,
        max_positions: int = 4096,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"duration dim ({dim}) must be divisible by heads ({heads})")
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.register_buffer("positions", sinusoidal_table(dim, max_positions), persistent=False)
        self.cond_proj = nn.Linear(cond_dim, dim) if cond_dim else None
        self.visual_proj = nn.Linear(visual_dim, dim) if visual_dim else None
        self.blocks = nn.ModuleList(
            [
                _Block(dim, heads, kernel_size, dropout, visual_dim is not None)
                for _ in range(layers)
            ]
        )
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, 1)

    @classmethod
    def from_config(
        cls,
        config: DurationConfig,
        vocab_size: int,
        cond_dim: int | None = None,
        visual_dim: int | None = None,
    ) -> DurationPredictor:
        """Sizes from ``speech.duration``; the conditions' widths from their encoders."""
        return cls(vocab_size, config.dim, config.layers, cond_dim=cond_dim, visual_dim=visual_dim)

    def forward(
        self,
        phonemes: torch.Tensor,  # (b, p) ids, 0 = pad
        mask: torch.Tensor | None = None,  # (b, p) True on phonemes
        cond: torch.Tensor | None = None,  # (b, cond_dim)
        visual: torch.Tensor | None = None,  # (b, t, visual_dim)
        visual_mask: torch.Tensor | None = None,  # (b, t) True on frames
    ) -> torch.Tensor:
        """Predicted ``log(1 + frames)`` ``(b, p)``.

        A condition the model was built with may be left out (None): that is the
        "dropped condition" case. One it was built without is an error.
        """
        if mask is None:
            mask = phonemes != 0
        p = phonemes.shape[1]
        if p > len(self.positions):
            raise ValueError(f"{p} phonemes exceed the predictor's {len(self.positions)} positions")
        x = self.embed(phonemes) + self.positions[:p]  # (b, p, d)
        if cond is not None:
            if self.cond_proj is None:
                raise ValueError("a global condition was given but the predictor has no cond_dim")
            x = x + self.cond_proj(cond).unsqueeze(1)
        vis = None
        if visual is not None:
            if self.visual_proj is None:
                raise ValueError("a visual condition was given but the predictor has no visual_dim")
            vis = self.visual_proj(visual) + self.positions[: visual.shape[1]]  # (b, t, d)
        for block in self.blocks:
            x = block(x, mask, vis, visual_mask)
        return self.out(self.norm(x)).squeeze(-1).masked_fill(~mask, 0.0)


class DurationLoss(NamedTuple):
    """The weighted sum and its two terms (for logging)."""

    loss: torch.Tensor
    log_mse: torch.Tensor
    total_l1: torch.Tensor


def duration_loss(
    pred_log: torch.Tensor,  # (b, p)
    target_frames: torch.Tensor,  # (b, p) integer frames
    mask: torch.Tensor,  # (b, p)
    total_weight: float = 0.5,
) -> DurationLoss:
    """MSE on ``log(1 + frames)`` per phoneme plus the relative error of the total.

    DeepDubber adds "a duration loss to constrain duration consistency" without
    an equation; we read it as two terms. The per-phoneme term is FastSpeech 2's
    log-domain MSE (masked mean over real phonemes). The total term is
    ``|sum(pred) - sum(target)| / sum(target)`` per utterance, batch mean: log
    errors of many short phonemes can agree while their sum drifts, and the
    sum is what must fit the video. Relative, so long and short lines weigh
    alike; ``total_weight`` 0.5 keeps it below the per-phoneme term, which
    alone decides the rhythm (not tuned beyond the tiny corpus).
    """
    maskf = mask.float()
    target = target_frames.float() * maskf
    log_mse = ((pred_log - torch.log1p(target)) ** 2 * maskf).sum() / maskf.sum().clamp(min=1)
    pred_frames = torch.expm1(pred_log.clamp(max=_MAX_LOG_FRAMES)).clamp(min=0) * maskf
    target_total = target.sum(1).clamp(min=1)
    total_l1 = ((pred_frames.sum(1) - target_total).abs() / target_total).mean()
    return DurationLoss(log_mse + total_weight * total_l1, log_mse, total_l1)


def fit_frames(raw: np.ndarray, minimum: np.ndarray, total: int) -> np.ndarray:
    """Integers ``>= minimum`` summing exactly to ``total``, proportional to ``raw``.

    Scale to the total; phonemes that fall below their minimum are pinned there
    and the rest rescaled to what is left (repeat until none fall); then
    largest-remainder rounding (Hamilton's method) keeps the sum exact.
    """
    raw = np.maximum(np.asarray(raw, dtype=np.float64), 0.0)
    minimum = np.asarray(minimum, dtype=np.int64)
    if total < minimum.sum():
        raise ValueError(f"total {total} frames is below the minimum {int(minimum.sum())}")
    if len(raw) == 0:
        if total:
            raise ValueError(f"no phonemes to spread {total} frames over")
        return np.zeros(0, dtype=np.int64)
    scaled = minimum.astype(np.float64)
    free = np.ones(len(raw), dtype=bool)
    while free.any():
        budget = total - minimum[~free].sum()
        weights = raw[free] if raw[free].sum() > 0 else np.ones(free.sum())
        scaled[free] = weights * budget / weights.sum()
        low = free & (scaled < minimum)
        if not low.any():
            break
        scaled[low] = minimum[low]
        free &= ~low
    base = np.maximum(np.floor(scaled).astype(np.int64), minimum)
    short = total - int(base.sum())
    order = np.argsort(-(scaled - base), kind="stable")  # largest remainder first
    base[order[: max(short, 0)]] += 1
    assert base.sum() == total and (base >= minimum).all(), "fit_frames invariant"
    return base


def predict_frames(
    pred_log: torch.Tensor,
    mask: torch.Tensor | None = None,
    pause: torch.Tensor | None = None,
    total_frames: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """Integer frames per phoneme from predicted ``log(1 + frames)``.

    Args:
        pred_log: ``(p,)`` or ``(b, p)`` predictor output.
        mask: True on real phonemes (all when None); padding gets 0 frames.
        pause: True on pause phonemes, which may get 0 frames; every other
            phoneme gets at least 1.
        total_frames: when given (one for all, or one per item) each item's
            frames sum exactly to it, so the speech fills its video slot.

    Returns:
        Long tensor shaped like ``pred_log``.

    Raises:
        ValueError: a total below one frame per non-pause phoneme.
    """
    squeeze = pred_log.dim() == 1
    logs = pred_log.detach().float().cpu().reshape(-1, pred_log.shape[-1])  # (b, p)
    keep = torch.ones_like(logs, dtype=torch.bool) if mask is None else mask.reshape(logs.shape)
    silent = torch.zeros_like(keep) if pause is None else pause.reshape(logs.shape).cpu()
    totals: list[int | None]
    if total_frames is None or isinstance(total_frames, int | np.integer):
        totals = [None if total_frames is None else int(total_frames)] * len(logs)
    else:
        totals = [int(t) for t in total_frames]
    out = torch.zeros(logs.shape, dtype=torch.long)
    for i, (row, total) in enumerate(zip(logs, totals, strict=True)):
        real = keep[i].cpu().numpy()
        raw = np.expm1(row.numpy()[real].clip(0.0, _MAX_LOG_FRAMES))
        minimum = (~silent[i].numpy()[real]).astype(np.int64)
        if total is None:
            frames = np.maximum(np.rint(raw).astype(np.int64), minimum)
        elif total < minimum.sum():
            raise ValueError(
                f"{total} frames cannot hold {int(minimum.sum())} spoken phonemes "
                "(one frame each at least); check the slot with dubops.speech.inputs.check_slot"
            )
        else:
            frames = fit_frames(raw, minimum, total)
        out[i, torch.from_numpy(real)] = torch.from_numpy(frames)
    out = out.to(pred_log.device)
    return out[0] if squeeze else out
