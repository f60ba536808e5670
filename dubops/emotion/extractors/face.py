"""Face emotion: a small CNN over the face crops a detector finds in a few frames.

The paper captions facial emotion changes with VideoLLaMA 2 and classifies the
caption; here the crops themselves are classified (brows, eyelids, mouth
corners, tint, tears). Every face on screen contributes: the crops' features
are averaged. A clip where no face is found (narration over an empty room, or a
miss) gets a learned "no face" feature instead, so its vector is still defined.

Shapes: ``b`` clips, ``n`` crops per clip (padded), ``s`` crop side, ``d`` embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn

from dubops.emotion.extractors.base import ClipInputs, TrainedExtractor
from dubops.emotion.extractors.face_detect import FaceDetector, crop_faces
from dubops.emotion.extractors.layers import CosineHead, Projection, SmallCNN, masked_mean
from dubops.emotion.extractors.scene import images_to_tensor

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig


class FaceNet(nn.Module):
    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__()
        self.cnn = SmallCNN(settings["channels"])
        dim = settings["dim"]
        self.no_face = nn.Parameter(torch.zeros(self.cnn.out_dim))
        self.project = Projection(self.cnn.out_dim, dim, dim, settings["fit"]["dropout"])
        self.head = CosineHead(dim, settings["logit_scale"])

    def forward(
        self, crops: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """crops (b, n, 3, s, s), mask (b, n) -> unit embedding (b, d), [logits (b, 7)]."""
        b, n = crops.shape[:2]
        if n:
            feats = self.cnn(crops.flatten(0, 1)).view(b, n, -1)  # (b, n, 2c)
            pooled = masked_mean(feats, mask)  # (b, 2c)
        else:
            pooled = crops.new_zeros(b, self.cnn.out_dim)
        empty = ~mask.any(dim=1, keepdim=True)  # (b, 1)
        pooled = torch.where(empty, self.no_face.expand(b, -1), pooled)
        z = nnf.normalize(self.project(pooled), dim=-1)  # (b, d)
        return z, [self.head(z)]


class FaceExtractor(TrainedExtractor):
    """Face-crop emotion vectors."""

    name = "face"

    def __init__(self, settings: dict[str, Any], net: Any | None = None, version: str = "") -> None:
        super().__init__(settings, net, version)
        self.detector = FaceDetector(settings["detector"], settings["upscale"])

    @classmethod
    def settings_from(cls, config: DubOpsConfig) -> dict[str, Any]:
        e = config.emotion
        return {"dim": e.dim, "logit_scale": e.logit_scale, **e.face.model_dump(mode="json")}

    @classmethod
    def build_net(cls, settings: dict[str, Any]) -> nn.Module:
        return FaceNet(settings)

    def prepare(self, batch: Sequence[ClipInputs]) -> list[np.ndarray]:
        s = self.settings
        return [
            crop_faces(
                item.frames, self.detector, s["frames"], s["max_faces"], s["crop"], s["margin"]
            )
            for item in batch
        ]

    def collate(self, prepared: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        side = self.settings["crop"]
        longest = max(len(c) for c in prepared)
        crops = np.zeros((len(prepared), longest, side, side, 3), dtype=np.uint8)
        mask = torch.zeros(len(prepared), longest, dtype=torch.bool)
        for i, c in enumerate(prepared):
            crops[i, : len(c)] = c
            mask[i, : len(c)] = True
        return {"crops": images_to_tensor(crops), "mask": mask}
