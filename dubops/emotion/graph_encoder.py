"""The graph attention encoders and the progressive construct-and-encode of Authentic-Dubber.

Each graph is encoded by a Graph Attention Encoder (GAE). Ours is a stack of
torch_geometric ``GATv2Conv`` layers whose attention also reads the edge's
relation (a learned embedding of :class:`~dubops.emotion.graph.Relation` passed
as ``edge_attr``), with a residual and LayerNorm per layer; it keeps 256
dimensions in and out, as the paper's GAE output.

Inputs are projected to 256 by one linear layer per modality (scene, face,
text, audio: basic and retrieved vectors of a modality come from the same
extractor, so they share a projection), plus a learned node-type embedding
(basic / indirect / audio x query modality) so the encoder can tell a target's
own scene vector from a retrieved one. The library's vectors are unit vectors
(coordinates ~1/16 at 256-d), so they are scaled by sqrt(dim) to unit variance
and the type embedding starts small (std 0.02): measured on the tiny corpus,
with unscaled inputs and a default N(0, 1) type embedding the type outweighed
the content, and swapping two clips' footage moved the emotion sequence by 0.6 %
of its size (30 % with the scaling).

The progression ("construct and encode", Fig. 2's *): the Basic Emotion Graph
is encoded; the Indirect Emotion Extended Graph is built with its basic nodes
set to that encoding and the retrieved nodes to their projections, and
encoded; the Direct Emotion Extended Graph starts from the indirect encoding
plus the projected audio nodes. The ablations of Table 2 switch the encoding
off (projected nodes only), or encode one graph of every node once.

Shapes: ``b`` samples, ``k`` hits per modality, ``N = 3 + 6k`` slots, ``d`` = 256.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dubops.emotion.graph import (
    NodeKind,
    Relation,
    build_graph,
    level_mask,
    num_slots,
    scatter_to_table,
    slot_kinds,
)
from dubops.emotion.graph_settings import QUERY_MODALITIES, GraphAblation, GraphConfig

FOOTAGE_KEYS: tuple[str, ...] = ("basic", "indirect", "audio", "hit_mask")


@dataclass
class LevelNodes:
    """One graph level's encoded nodes per sample, padded: ``h (b, nodes, d)``, ``mask``."""

    h: torch.Tensor
    mask: torch.Tensor


def check_footage(footage: dict[str, torch.Tensor]) -> int:
    """Validate the footage tensors' keys and shapes; return k (hits per modality)."""
    missing = [key for key in FOOTAGE_KEYS if key not in footage]
    if missing:
        raise ValueError(
            f"footage tensors lack {missing}; build them with dubops.emotion.footage_batch"
        )
    basic, indirect, audio, hits = (footage[key] for key in FOOTAGE_KEYS)
    b, k = basic.shape[0], hits.shape[-1]
    if basic.shape[:2] != (b, 3) or indirect.shape[:3] != (b, 3, k) or audio.shape[:3] != (b, 3, k):
        raise ValueError(
            f"footage shapes do not fit: basic {tuple(basic.shape)} (b, 3, d), indirect "
            f"{tuple(indirect.shape)} and audio {tuple(audio.shape)} (b, 3, k, d), "
            f"hit_mask {tuple(hits.shape)} (b, 3, k)"
        )
    return k


def gather_dense(table: torch.Tensor, mask: torch.Tensor) -> LevelNodes:
    """The masked slots of ``table (b, N, d)``, packed to the front and padded."""
    counts = mask.sum(1)  # (b,)
    width = max(int(counts.max()), 1)
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :width]  # (b, width)
    h = table.gather(1, order[..., None].expand(-1, -1, table.shape[-1]))
    keep = torch.arange(width, device=table.device)[None] < counts[:, None]
    return LevelNodes(h * keep[..., None], keep)


class GraphAttentionEncoder(nn.Module):
    """GATv2 layers with relation-typed edge features; ``(nodes, d)`` -> ``(nodes, d)``."""

    def __init__(self, dim: int, heads: int, layers: int, dropout: float) -> None:
        super().__init__()
        from torch_geometric.nn import GATv2Conv

        if dim % heads:
            raise ValueError(f"graph.dim ({dim}) must be divisible by graph.heads ({heads})")
        self.relation = nn.Embedding(len(Relation), dim)
        self.convs = nn.ModuleList(
            GATv2Conv(dim, dim // heads, heads=heads, edge_dim=dim, add_self_loops=False)
            for _ in range(layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.act = nn.GELU()

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_type: torch.Tensor
    ) -> torch.Tensor:
        edge_attr = self.relation(edge_type)  # (E, d)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = norm(x + self.dropout(self.act(conv(x, edge_index, edge_attr))))
        return x


class ProgressiveGraphEncoder(nn.Module):
    """Footage tensors -> the encoded nodes of each graph level (``H_beg``, ``H_ieg``, ``H_deg``).

    ``footage`` holds ``basic (b, 3, di)`` (the target's S, F, T), ``indirect
    (b, 3, k, di)`` (per query modality its k retrieved vectors of that
    modality), ``audio (b, 3, k, di)`` (their matched audio vectors) and
    ``hit_mask (b, 3, k)`` bool.
    """

    def __init__(self, config: GraphConfig, ablation: GraphAblation | None = None) -> None:
        super().__init__()
        self.ablation = ablation or config.switches()
        self.levels = self.ablation.levels()
        dim = config.dim
        self.project = nn.ModuleDict(
            {m: nn.Linear(config.input_dim, dim) for m in (*QUERY_MODALITIES, "audio")}
        )
        self.kind = nn.Embedding(len(NodeKind), dim)
        nn.init.normal_(self.kind.weight, std=0.02)
        self.input_scale = config.input_dim**0.5  # unit vectors -> unit-variance coordinates
        if not self.ablation.graph:
            names: tuple[str, ...] = ()
        elif self.ablation.construct_encode:
            names = self.levels
        else:
            names = ("all",)
        self.encoders = nn.ModuleDict(
            {
                name: GraphAttentionEncoder(dim, config.heads, config.layers, config.dropout)
                for name in names
            }
        )

    def node_table(self, footage: dict[str, torch.Tensor]) -> torch.Tensor:
        """Every slot's projected input plus its node-type embedding: ``(b, N, d)``."""
        k = check_footage(footage)

        def project(name: str, x: torch.Tensor) -> torch.Tensor:
            return self.project[name](x * self.input_scale)

        basic = torch.stack(
            [project(m, footage["basic"][:, i]) for i, m in enumerate(QUERY_MODALITIES)], 1
        )  # (b, 3, d)
        indirect = torch.stack(
            [project(m, footage["indirect"][:, i]) for i, m in enumerate(QUERY_MODALITIES)], 1
        )  # (b, 3, k, d)
        audio = project("audio", footage["audio"])  # (b, 3, k, d)
        table = torch.cat([basic, indirect.flatten(1, 2), audio.flatten(1, 2)], dim=1)
        assert table.shape[1] == num_slots(k)
        return table + self.kind(slot_kinds(k).to(table.device))[None]

    def masks(self, hit_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each level's slots ``(b, N)`` under the ablation."""
        a = self.ablation
        return {
            level: level_mask(level, hit_mask.bool(), a.retrieve, a.indirect, a.direct)
            for level in self.levels
        }

    def _encode(self, name: str, table: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
        graph = build_graph(table, mask, k)
        x = self.encoders[name](graph.x, graph.edge_index, graph.edge_type)
        return scatter_to_table(table, graph, x)

    def forward(self, footage: dict[str, torch.Tensor]) -> dict[str, LevelNodes]:
        """``{level: LevelNodes}`` for the levels in use (``basic`` always)."""
        k = check_footage(footage)
        table = self.node_table(footage)
        masks = self.masks(footage["hit_mask"])
        out: dict[str, LevelNodes] = {}
        if not self.ablation.graph:  # Table 2 row 10: projections straight to aggregation
            return {level: gather_dense(table, mask) for level, mask in masks.items()}
        if not self.ablation.construct_encode:  # row 11: one graph, every node, encoded once
            table = self._encode("all", table, masks[self.levels[-1]], k)
            return {level: gather_dense(table, mask) for level, mask in masks.items()}
        for level in self.levels:
            # The level's earlier nodes start from the previous encoding (already in the table).
            table = self._encode(level, table, masks[level], k)
            out[level] = gather_dense(table, masks[level])
        return out
