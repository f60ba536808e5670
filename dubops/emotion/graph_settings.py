"""Progressive emotion graph settings: pydantic only, so loading a config never imports torch.

Besides the sizes, this holds the named ablations of Authentic-Dubber's Table 2
(rows 4-12: retrieval per modality, indirect information, direct audio,
graph-based modelling, construct-and-encode, hierarchical aggregation) as plain
switches, so the stage, the conditioner and the CLI read one table.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, field_validator, model_validator

from dubops.config.section import Section
from dubops.errors import InputError
from dubops.speech.train_config import TrainConfig

QUERY_MODALITIES: tuple[str, ...] = ("scene", "face", "text")

# The dubbing model's parts the graph stage can hold fixed (``graph.frozen``); the
# pretrained DiT is always frozen, the emotion module always trains.
FREEZABLE_PARTS: tuple[str, ...] = (
    "visual",
    "conclusion",
    "fusion",
    "controlnet",
    "duration",
    "pitch",
)


@dataclass(frozen=True)
class GraphAblation:
    """What the progressive graph leaves out (all True: the full Authentic-Dubber).

    Attributes:
        retrieve: per query modality (scene, face, text), whether its retrieved
            nodes (indirect and matched audio) enter the graphs (Table 2 rows 4-7).
        indirect: retrieved indirect nodes (row 8; the matched audio stays).
        direct: matched direct-emotion audio nodes (row 9).
        graph: graph attention encoding; False hands the projected nodes
            straight to the aggregation (row 10).
        construct_encode: the progressive construct-and-encode; False encodes
            one graph holding every node once (row 11).
        hierarchical: the three-level aggregation of eq. (1); False is one
            cross-attention over all nodes and one Conv1D (row 12).
    """

    retrieve: tuple[bool, bool, bool] = (True, True, True)
    indirect: bool = True
    direct: bool = True
    graph: bool = True
    construct_encode: bool = True
    hierarchical: bool = True

    @property
    def any_retrieval(self) -> bool:
        return any(self.retrieve)

    def levels(self) -> tuple[str, ...]:
        """The graphs built in order: always ``basic``, then ``indirect`` / ``direct``."""
        levels = ["basic"]
        if self.any_retrieval and self.indirect:
            levels.append("indirect")
        if self.any_retrieval and self.direct:
            levels.append("direct")
        return tuple(levels)


GRAPH_ABLATIONS: dict[str, GraphAblation] = {
    "none": GraphAblation(),
    "no-scene-retrieval": GraphAblation(retrieve=(False, True, True)),
    "no-face-retrieval": GraphAblation(retrieve=(True, False, True)),
    "no-text-retrieval": GraphAblation(retrieve=(True, True, False)),
    "no-retrieval": GraphAblation(retrieve=(False, False, False)),
    "no-indirect": GraphAblation(indirect=False),
    "no-direct": GraphAblation(direct=False),
    "no-graph": GraphAblation(graph=False),
    "no-construct-encode": GraphAblation(construct_encode=False),
    "no-hierarchical": GraphAblation(hierarchical=False),
}


def graph_ablation(name: str) -> GraphAblation:
    """The switches of a named ablation, or an InputError listing the names."""
    if name not in GRAPH_ABLATIONS:
        raise InputError(
            f"graph ablation {name!r} is unknown; choose one of {list(GRAPH_ABLATIONS)}"
        )
    return GRAPH_ABLATIONS[name]


class GraphConfig(Section):
    """The progressive graph, its aggregation and the graph-synthesizer stage (``graph``)."""

    dim: int = Field(256, gt=0, description="node and output size (Authentic-Dubber: 256)")
    input_dim: int = Field(256, gt=0, description="footage emotion vector size (library.dim)")
    heads: int = Field(4, gt=0, description="graph attention heads (dim must divide by it)")
    layers: int = Field(2, gt=0, description="GATv2 layers per graph attention encoder")
    dropout: float = Field(0.1, ge=0, lt=1)
    attention_heads: int = Field(4, gt=0, description="cross-attention heads of eq. (1)")
    conv_kernel: int = Field(3, gt=0, description="Conv1D kernel of eq. (1) (odd)")
    ablation: str = Field("none", description=f"one of {list(GRAPH_ABLATIONS)}")
    conclusion_drop_prob: float | None = Field(
        None,
        ge=0,
        le=1,
        description="how often the stage trains without the reasoner's conclusion; null keeps "
        "the ControlNet's condition_drop_prob (5 %). Higher makes the footage carry the emotion",
    )
    frozen: list[str] = Field(
        default_factory=list,
        description=f"parts of the finished ControlNet model held fixed while the graph trains "
        f"(any of {list(FREEZABLE_PARTS)}); [] trains them all with the graph",
    )
    training: TrainConfig = Field(
        default_factory=lambda: TrainConfig(lr=1e-4, warmup_steps=200),
        description="the graph-synthesizer stage (graph + aggregation + ControlNet)",
    )

    @field_validator("ablation")
    @classmethod
    def _known_ablation(cls, value: str) -> str:
        graph_ablation(value)
        return value

    @field_validator("frozen")
    @classmethod
    def _known_parts(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in FREEZABLE_PARTS]
        if unknown:
            raise ValueError(
                f"graph.frozen names unknown part(s) {unknown}; choose from {list(FREEZABLE_PARTS)}"
            )
        return sorted(set(value), key=FREEZABLE_PARTS.index)

    @field_validator("conv_kernel")
    @classmethod
    def _odd_kernel(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"graph.conv_kernel must be odd (keeps the length), got {value}")
        return value

    @model_validator(mode="after")
    def _heads_divide(self) -> GraphConfig:
        for name in ("heads", "attention_heads"):
            if self.dim % getattr(self, name):
                raise ValueError(f"graph.dim ({self.dim}) must be divisible by graph.{name}")
        return self

    def switches(self) -> GraphAblation:
        return graph_ablation(self.ablation)
