"""Scene emotion: a small CNN over a few whole frames of the clip.

The paper captions the scene's emotional atmosphere with VideoLLaMA 2, prompted
with hue, lightness and saturation, and classifies the caption. Those global
low-level cues are what a CNN over downscaled whole frames reads directly; it is
trained here on the corpus's emotion labels.

Shapes: ``b`` clips, ``k`` sampled frames, ``s`` frame side, ``d`` embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn

from dubops.emotion.extractors.base import ClipInputs, TrainedExtractor
from dubops.emotion.extractors.layers import CosineHead, Projection, SmallCNN

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig


def sample_frames(frames: np.ndarray, count: int, size: int) -> np.ndarray:
    """``count`` frames from the middles of equal segments, resized -> uint8 (k, s, s, 3)."""
    import cv2

    if frames is None or len(frames) == 0:
        raise ValueError("the scene and face extractors need the clip's video frames")
    idx = ((np.arange(count) + 0.5) * len(frames) / count).astype(int)
    return np.stack(
        [cv2.resize(frames[i], (size, size), interpolation=cv2.INTER_AREA) for i in idx]
    )


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (..., s, s, 3) -> float (..., 3, s, s) in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float() / 255.0
    return x.movedim(-1, -3)


class SceneNet(nn.Module):
    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__()
        self.cnn = SmallCNN(settings["channels"])
        dim = settings["dim"]
        self.project = Projection(self.cnn.out_dim, dim, dim, settings["fit"]["dropout"])
        self.head = CosineHead(dim, settings["logit_scale"])

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """frames (b, k, 3, s, s) -> unit embedding (b, d), [logits (b, 7)]."""
        b, k = frames.shape[:2]
        feats = self.cnn(frames.flatten(0, 1)).view(b, k, -1).mean(1)  # (b, 2c)
        z = nnf.normalize(self.project(feats), dim=-1)  # (b, d)
        return z, [self.head(z)]


class SceneExtractor(TrainedExtractor):
    """Whole-frame scene emotion vectors."""

    name = "scene"

    @classmethod
    def settings_from(cls, config: DubOpsConfig) -> dict[str, Any]:
        e = config.emotion
        return {"dim": e.dim, "logit_scale": e.logit_scale, **e.scene.model_dump(mode="json")}

    @classmethod
    def build_net(cls, settings: dict[str, Any]) -> nn.Module:
        return SceneNet(settings)

    def prepare(self, batch: Sequence[ClipInputs]) -> list[np.ndarray]:
        s = self.settings
        return [sample_frames(item.frames, s["frames"], s["size"]) for item in batch]

    def collate(self, prepared: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        return {"frames": images_to_tensor(np.stack(prepared))}
