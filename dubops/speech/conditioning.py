"""Conditions of the ControlNet stage: video features, the reasoning conclusion, emotion.

DeepDubber 2.2 encodes video frames (CLIP in the paper), embeds the conclusion
(scene type, gender, age, emotion) and fuses the two by cross-attention; the
Authentic-Dubber footage graph may add an emotion sequence. Everything here
returns a sequence at the mel frame rate, ``(b, n, dim)``, which the ControlNet
branch adds to its input.

Dropping a condition (classifier-free guidance) swaps in a learned null:
``keep_*`` masks are per sample, so one batch can mix dropped and kept ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as nnf
from torch import nn

from dubops.data.schema import AGES, EMOTIONS, GENDERS, SCENE_TYPES

CONCLUSION_FIELDS: tuple[tuple[str, int], ...] = (
    ("scene_type", len(SCENE_TYPES)),
    ("gender", len(GENDERS)),
    ("age", len(AGES)),
    ("emotion", len(EMOTIONS)),
)


class FrameEncoder(nn.Module):
    """A small CNN per frame plus a temporal convolution (the tiny preset's "CLIP").

    Trained with the ControlNet; mouth shapes and their change over a few frames
    are what the speech timing needs, hence the temporal kernel of 5 frames.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(3, 32, 5, stride=2, padding=2),
            nn.GELU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(64, 96, 3, stride=2, padding=1),
            nn.GELU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(96 * 4, dim),
        )
        self.temporal = nn.Conv1d(dim, dim, 5, padding=2)

    # Frames per CNN call at inference: a long clip's activations (110 MB for 60 s at
    # 48 px in one call) stay bounded; each frame's features are the same either way.
    inference_chunk = 256

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``(b, f, 3, s, s)`` uint8 or float in [0, 1] -> ``(b, f, dim)``."""
        b, f = frames.shape[:2]
        x = frames.flatten(0, 1)
        step = len(x) if torch.is_grad_enabled() else self.inference_chunk
        parts = [self._per_frame(x[i : i + step]) for i in range(0, len(x), max(step, 1))]
        h = (parts[0] if len(parts) == 1 else torch.cat(parts)).view(b, f, -1)
        return h + self.temporal(h.transpose(1, 2)).transpose(1, 2)

    def _per_frame(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x
        return self.cnn(x)


class ClipFrameEncoder(nn.Module):
    """CLIP vision tower from a local path (the base preset), frozen, per frame."""

    def __init__(self, path: str, dim: int) -> None:
        super().__init__()
        from transformers import CLIPVisionModel

        self.clip = CLIPVisionModel.from_pretrained(path, local_files_only=True)
        self.clip.requires_grad_(False)
        self.proj = nn.Linear(self.clip.config.hidden_size, dim)
        size = self.clip.config.image_size
        self.register_buffer("mean", torch.tensor([0.4815, 0.4578, 0.4082]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2686, 0.2613, 0.2758]).view(1, 3, 1, 1))
        self.size = size

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, f = frames.shape[:2]
        x = frames.flatten(0, 1).float()
        x = x / 255.0 if frames.dtype == torch.uint8 else x
        x = nnf.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        with torch.no_grad():
            pooled = self.clip(pixel_values=(x - self.mean) / self.std).pooler_output
        return self.proj(pooled).view(b, f, -1)


def to_mel_rate(
    features: torch.Tensor, frame_lengths: torch.Tensor, mel_lengths: torch.Tensor, n: int
) -> torch.Tensor:
    """Linearly interpolate ``(b, f, d)`` video-rate features to each sample's mel frames.

    25 fps video and 93.75 Hz mels cover the same seconds, so sample ``i``'s
    ``frame_lengths[i]`` features stretch over its ``mel_lengths[i]`` frames; the
    rest up to ``n`` is zero.
    """
    out = features.new_zeros(features.shape[0], n, features.shape[2])
    for i in range(features.shape[0]):
        f, m = int(frame_lengths[i]), min(int(mel_lengths[i]), n)
        seq = features[i, :f].T.unsqueeze(0)  # (1, d, f)
        out[i, :m] = nnf.interpolate(seq, size=m, mode="linear", align_corners=True)[0].T
    return out


class ConclusionEmbedding(nn.Module):
    """The four conclusion fields as four tokens; dropped samples get learned nulls.

    ``read`` names the fields served (default all four): in eval mode the others
    are their null token, the one guidance dropout trains, so a field the reasoner
    often gets wrong (gender, age) cannot pull the voice away from what the
    prompt already says. Training reads every field, so the embedding learns all
    four and a folder can serve any subset (``read`` is not a weight).
    """

    def __init__(self, dim: int, read: Sequence[str] | None = None) -> None:
        super().__init__()
        names = [name for name, _ in CONCLUSION_FIELDS]
        unknown = sorted(set(read or ()) - set(names))
        if unknown:
            raise ValueError(f"unknown conclusion fields {unknown}; choose from {names}")
        self.fields = nn.ModuleDict({name: nn.Embedding(k, dim) for name, k in CONCLUSION_FIELDS})
        self.null = nn.Parameter(torch.zeros(len(CONCLUSION_FIELDS), dim))
        mask = torch.tensor([read is None or name in read for name in names])
        self.register_buffer("read", mask, persistent=False)

    def forward(self, labels: dict[str, torch.Tensor], keep: torch.Tensor) -> torch.Tensor:
        tokens = torch.stack([self.fields[name](labels[name]) for name, _ in CONCLUSION_FIELDS], 1)
        keep_field = keep[:, None] & (self.read[None, :] | self.training)
        return torch.where(keep_field[..., None], tokens, self.null.unsqueeze(0))


class ConditionFusion(nn.Module):
    """Visual sequence attends to the conclusion tokens (and an emotion sequence).

    Output ``(b, n, model_dim)`` for the ControlNet input. ``emotion`` is the
    footage library's interface: ``(b, k, emotion_dim)`` vectors (any k), attended
    like the conclusion tokens; absent or dropped -> only the conclusion.
    """

    def __init__(self, visual_dim: int, emotion_dim: int, model_dim: int, heads: int) -> None:
        super().__init__()
        self.visual_null = nn.Parameter(torch.zeros(visual_dim))
        self.emotion_proj = nn.Linear(emotion_dim, visual_dim)
        self.norm = nn.LayerNorm(visual_dim)
        self.attn = nn.MultiheadAttention(visual_dim, heads, batch_first=True)
        self.out = nn.Sequential(
            nn.Linear(visual_dim, model_dim), nn.SiLU(), nn.Linear(model_dim, model_dim)
        )

    def forward(
        self,
        visual: torch.Tensor,
        keep_visual: torch.Tensor,
        conclusion: torch.Tensor,
        emotion: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``visual (b, n, dv)``, ``conclusion (b, 4, dv)``, ``emotion (b, k, de)``.

        ``keep_visual`` is per sample ``(b,)`` or per frame ``(b, n)``.
        """
        keep = keep_visual[:, None, None] if keep_visual.dim() == 1 else keep_visual[..., None]
        visual = torch.where(keep, visual, self.visual_null)
        context = conclusion
        if emotion is not None:
            context = torch.cat([context, self.emotion_proj(emotion)], dim=1)
        fused, _ = self.attn(self.norm(visual), context, context, need_weights=False)
        return self.out(visual + fused)
