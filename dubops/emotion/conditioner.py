"""Footage -> the ControlNet's emotion sequence: progressive graph + hierarchical aggregation.

Authentic-Dubber's "Emotion Knowledge-based Speech Synthesizer" aggregates the
encoded graphs into ``H_{t,v,r}``, the output of its cross-modal aligner (the
StyleDubber aligner: script, visual frames and timbre prompt aligned at the
mel rate), and hands ``E_out`` to the mel decoder.

**Our H.** DeepDubber's generator has no separate aligner: the ControlNet reads
the video as FrameEncoder features interpolated to the mel rate
(:meth:`dubops.speech.dubbing_model.DubbingModel.condition`), and the script
enters the frozen DiT frame-aligned. So H is that mel-rate visual sequence,
projected to 256 by a linear layer, with frames whose video is dropped
(guidance dropout, the prompt span at inference) set to zero, as the duration
predictor reads them. It is the only mel-rate sequence the ControlNet's
conditions have, it carries the lip timing the aligner's output would, and it
keeps the graph inside the ControlNet branch (the base DiT stays frozen).
``E_out (b, n, 256)`` then enters :class:`~dubops.speech.conditioning.ConditionFusion`
as its ``emotion`` input: one emotion token per frame beside the conclusion
tokens.

Every Table 2 ablation that applies to us is a switch of the
:class:`~dubops.emotion.graph_settings.GraphAblation` this module is built with.

Shapes: ``b`` samples, ``n`` mel frames, ``dv`` visual width, ``d`` = 256.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from dubops.emotion.aggregation import HierarchicalAggregation
from dubops.emotion.graph_encoder import ProgressiveGraphEncoder
from dubops.emotion.graph_settings import GraphAblation, GraphConfig
from dubops.speech.pretrained import CheckpointError

logger = logging.getLogger(__name__)

GRAPH_FILE = "graph.safetensors"  # the emotion module's weights in a graph-stage folder
GRAPH_CONFIG = "graph.json"  # the GraphConfig (ablation included) they belong to


class EmotionConditioner(nn.Module):
    """``(visual (b, n, dv), footage tensors)`` -> emotion sequence ``(b, n, d)``.

    Args:
        config: the ``graph`` section.
        visual_dim: the ControlNet's visual feature width (``speech.controlnet.visual_dim``).
        emotion_dim: what ConditionFusion takes (``speech.controlnet.emotion_dim``);
            must equal ``graph.dim`` (eq. (1)'s Conv1D output is the emotion sequence).
        ablation: overrides ``config.ablation``.
    """

    def __init__(
        self,
        config: GraphConfig,
        visual_dim: int,
        emotion_dim: int,
        ablation: GraphAblation | None = None,
    ) -> None:
        super().__init__()
        if config.dim != emotion_dim:
            raise ValueError(
                f"graph.dim ({config.dim}) must equal speech.controlnet.emotion_dim "
                f"({emotion_dim}): set both to the same size"
            )
        self.ablation = ablation or config.switches()
        self.h_proj = nn.Linear(visual_dim, config.dim)
        self.graph = ProgressiveGraphEncoder(config, self.ablation)
        self.aggregation = HierarchicalAggregation(
            config.dim,
            config.attention_heads,
            config.conv_kernel,
            self.graph.levels,
            hierarchical=self.ablation.hierarchical,
        )

    def forward(self, visual: torch.Tensor, footage: dict[str, torch.Tensor]) -> torch.Tensor:
        """``visual (b, n, dv)`` (dropped frames already zero), footage of the same b samples."""
        if footage["basic"].shape[0] != visual.shape[0]:
            raise ValueError(
                f"footage for {footage['basic'].shape[0]} samples, visual for {visual.shape[0]}"
            )
        h = self.h_proj(visual)  # (b, n, d)
        nodes = self.graph(footage)
        return self.aggregation(h, {level: (v.h, v.mask) for level, v in nodes.items()})


def is_graph_dir(run_dir: str | Path) -> bool:
    """True for a ``dubops train graph`` folder (it holds the emotion module)."""
    return (Path(run_dir) / GRAPH_FILE).is_file()


def load_conditioner(run_dir: str | Path, visual_dim: int, emotion_dim: int) -> EmotionConditioner:
    """A graph-stage folder's emotion module, with its exported (EMA) weights, strictly."""
    from safetensors.torch import load_file

    root = Path(run_dir)
    settings = root / GRAPH_CONFIG
    if not settings.is_file():
        raise CheckpointError(f"{settings} is missing; rerun `dubops train graph --out {root}`")
    config = GraphConfig.model_validate_json(settings.read_text())
    module = EmotionConditioner(config, visual_dim, emotion_dim)
    module.load_state_dict(load_file(str(root / GRAPH_FILE)), strict=True)
    return module
