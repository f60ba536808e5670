"""What a dub returns: :class:`DubResult`, the speech and everything that decided it.

Besides the wave (and the muxed mp4 when asked), a result carries what monitoring
and review need as plain data: the reasoner's text, the conclusion with the
source of each field (``reasoner``, ``override``, ``fallback``, or ``none`` when
the model dubbed without a conclusion), the retrieved footage with similarities,
the query vectors, per-stage seconds and the model version.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

STAGES = ("read", "reason", "embed", "retrieve", "generate", "vocode", "mux")


@dataclass
class DubResult:
    """One dubbed clip.

    ``seconds`` holds this clip's share of each stage (a batch's stage time
    divided by ``batch_size``) and ``total``; ``footage`` maps each query modality
    to its hits (``clip_id``, ``similarity``, ``emotion``); ``query_vectors`` the
    scene, face and text vectors that queried the library; ``features`` what
    monitoring compares with the model's reference profile
    (:func:`dubops.monitoring.features.clip_features`).
    """

    name: str
    wave: np.ndarray
    sample_rate: int
    reasoning_text: str
    conclusion: dict[str, str] | None
    conclusion_source: dict[str, str]
    parse_ok: bool
    parse_error: str | None
    seconds: dict[str, float]
    batch_size: int = 1
    footage: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    query_vectors: dict[str, list[float]] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)
    model_version: str | None = None
    speaker_id: str | None = None
    seed: int = 0
    mp4: bytes | None = None

    @property
    def duration(self) -> float:
        return len(self.wave) / self.sample_rate

    @property
    def fallback(self) -> bool:
        """True when the reasoner's answer could not be parsed and a field fell back."""
        return "fallback" in self.conclusion_source.values()

    def to_json(self, vectors: bool = False) -> dict[str, Any]:
        """Everything but the wave and the mp4 bytes, JSON-ready (vectors only when asked)."""
        skip = {"wave", "mp4"} | (set() if vectors else {"query_vectors"})
        data = {k: v for k, v in asdict(self).items() if k not in skip}
        data["audio_seconds"] = round(self.duration, 4)
        data["fallback"] = self.fallback
        data["mp4_bytes"] = len(self.mp4) if self.mp4 is not None else 0
        return data
