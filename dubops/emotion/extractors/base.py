"""The one extractor interface, the clip inputs it reads, and weight I/O.

Every extractor maps a batch of clips to ``(b, dim)`` float32 rows of unit
length, so retrieval is a plain cosine (a dot product). Trained extractors keep
their network and a JSON of settings; the ``version`` hashes both, so a
library built with other weights or settings is known to be stale.

Shapes: ``b`` clips, ``f`` video frames, ``h``/``w`` frame size, ``t`` samples.
"""

from __future__ import annotations

import hashlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from dubops.data.schema import EMOTIONS
from dubops.fileio import atomic_path, write_json
from dubops.sample_rates import SPEECH_SAMPLE_RATE

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1


@dataclass
class ClipInputs:
    """What the extractors read from one clip; each uses only its own fields.

    ``frames`` is uint8 ``(f, h, w, 3)`` RGB; waves are float32 mono ``(t,)`` at
    ``sample_rate``. The query side of retrieval has no target speech, so
    ``wave`` may be None when only scene, face and text are wanted.
    """

    clip_id: str = ""
    frames: np.ndarray | None = None
    script: str = ""
    react: str = ""
    wave: np.ndarray | None = None
    prompt_wave: np.ndarray | None = None
    sample_rate: int = SPEECH_SAMPLE_RATE


class EmotionExtractor(ABC):
    """One modality's emotion vectors: ``embed(batch) -> (b, dim)`` unit float32 rows."""

    name: ClassVar[str]
    dim: int
    version: str

    @abstractmethod
    def embed(self, batch: Sequence[ClipInputs]) -> np.ndarray:
        """Emotion vectors of a batch of clips, L2-normalised rows, float32 ``(b, dim)``."""


def content_version(weights: bytes, settings: dict[str, Any]) -> str:
    """Short hash of the weight file's bytes and the settings JSON (the extractor version)."""
    digest = hashlib.sha256(weights)
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:12]


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); an all-zero row stays zero."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


class TrainedExtractor(EmotionExtractor):
    """An extractor backed by a torch network trained here.

    Subclasses define the network (``build_net``), the per-clip preprocessing
    (``prepare``, cached once during training) and how prepared clips become
    tensors (``collate``). The network's ``forward(**tensors)`` returns the unit
    embedding ``(b, dim)`` and a list of emotion logits ``[(b, 7), ...]``, each
    trained with cross-entropy.
    """

    def __init__(self, settings: dict[str, Any], net: Any | None = None, version: str = "") -> None:
        self.settings = settings
        self.dim = int(settings["dim"])
        self.net = net if net is not None else self.build_net(settings)
        self.version = version

    # --- what each modality defines

    @classmethod
    @abstractmethod
    def build_net(cls, settings: dict[str, Any]) -> torch.nn.Module:
        """A freshly initialised network for these settings."""

    @abstractmethod
    def prepare(self, batch: Sequence[ClipInputs]) -> list[Any]:
        """Per-clip network inputs (NumPy), computed once per clip."""

    @abstractmethod
    def collate(self, prepared: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Prepared clips -> the network's keyword tensors."""

    # --- shared

    def embed(self, batch: Sequence[ClipInputs]) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_prepared(self.prepare(batch))

    def embed_prepared(self, prepared: Sequence[Any]) -> np.ndarray:
        """Embeddings of already prepared clips (training caches these)."""
        import torch

        self.net.eval()
        with torch.no_grad():
            z, _ = self.net(**self.collate(prepared))
        return unit_rows(z.numpy())

    def save(self, folder: str | Path, extra: dict[str, Any] | None = None) -> str:
        """Write ``<name>.safetensors`` and ``<name>.json`` atomically; returns the version."""
        from safetensors.torch import save

        state = {k: v.detach().contiguous().cpu() for k, v in self.net.state_dict().items()}
        weights = save(state)
        self.version = content_version(weights, self.settings)
        folder = Path(folder)
        with atomic_path(folder / f"{self.name}.safetensors") as tmp:
            tmp.write_bytes(weights)
        meta = {
            "name": self.name,
            "dim": self.dim,
            "version": self.version,
            "format": FORMAT_VERSION,
            "classes": list(EMOTIONS),
            "settings": self.settings,
            **(extra or {}),
        }
        write_json(folder / f"{self.name}.json", meta)
        return self.version

    @classmethod
    def load(cls, folder: str | Path) -> TrainedExtractor:
        """The extractor saved by :meth:`save` (settings from its JSON, not the current config)."""
        from safetensors.torch import load

        weights_path, meta_path = files_of(folder, cls.name)
        meta = json.loads(meta_path.read_text())
        weights = weights_path.read_bytes()
        settings = meta["settings"]
        net = cls.build_net(settings)
        net.load_state_dict(load(weights))
        net.eval()
        return cls(settings, net, content_version(weights, settings))


def files_of(folder: str | Path, name: str) -> tuple[Path, Path]:
    """``(<name>.safetensors, <name>.json)`` in ``folder``; FileNotFoundError naming the fix."""
    folder = Path(folder)
    weights, meta = folder / f"{name}.safetensors", folder / f"{name}.json"
    for path in (weights, meta):
        if not path.is_file():
            raise FileNotFoundError(
                f"no {name} extractor at {path}; train the extractors first with "
                f"`dubops train extractors --out {folder}`"
            )
    return weights, meta
