"""Network pieces the extractors share: a small image CNN and the cosine emotion head.

Shapes: ``b`` batch, ``n`` images per item, ``c`` channels, ``s`` image side,
``d`` embedding size, ``k`` emotion classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torch import nn

from dubops.data.schema import EMOTIONS


class SmallCNN(nn.Module):
    """conv3x3-BN-ReLU-maxpool blocks, then global average and max pooling.

    Mean and max together keep both the dominant colour (the mean) and small
    salient marks such as tears or a vein (the max).
    """

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in channels:
            layers += [
                nn.Conv2d(c_in, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.out_dim = 2 * c_in

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(m, 3, s, s) float in [0, 1] -> (m, 2 c)."""
        x = self.body(images - 0.5)  # (m, c, s', s')
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)


class CosineHead(nn.Module):
    """Emotion logits as scaled cosines between the unit embedding and unit class weights.

    A plain linear head would let the embedding's useful directions hide in its
    norm; with a cosine head the classes separate by angle, the quantity
    retrieval ranks by (as in normalised-softmax / CosFace heads).
    """

    def __init__(self, dim: int, scale: float, classes: int = len(EMOTIONS)) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim) * dim**-0.5)
        self.scale = scale

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(b, d) unit rows -> (b, k) logits."""
        return self.scale * z @ nnf.normalize(self.weight, dim=1).T


class Projection(nn.Module):
    """Pooled features -> dropout -> linear -> GELU -> linear: the penultimate embedding."""

    def __init__(self, in_dim: int, hidden: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(in_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, in) -> (b, d), not yet normalised."""
        return self.net(x)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over axis 1 of (b, n, d) where ``mask`` (b, n) is True; 0 for empty rows."""
    weights = mask.to(x.dtype).unsqueeze(-1)  # (b, n, 1)
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)
