"""Construction of Authentic-Dubber's three emotion graphs, batched with torch_geometric.

Every sample's nodes live in one canonical table of ``3 + 6k`` slots (``k``
retrieved clips per query modality):

    slot 0..2                  basic nodes S, F, T of the target clip
    slot 3 + m*k + j           indirect node: hit j of query modality m (a vector
                               of modality m: scene hits are scene vectors, ...)
    slot 3 + 3k + m*k + j      direct node: the audio vector matched to that hit

A graph level is a subset of the slots (a node mask), wired as the paper says
("Progressive Graph-based Speech Generation"):

* Basic Emotion Graph: S, F, T connected pairwise.
* Indirect Emotion Extended Graph: + the retrieved indirect nodes, each linked to
  the basic node of its own modality.
* Direct Emotion Extended Graph: + the matched audio nodes, each linked to the
  basic node whose query retrieved it.

Edges go both ways and carry a relation type (:class:`Relation`), which the
encoder embeds as edge features; every node also has a typed self-loop so a
node keeps its own state under attention. Keeping one slot table lets a level
initialise its nodes from the previous level's encoding by slot ("construct and
encode", the * of the paper's Figure 2).

Shapes: ``b`` samples, ``k`` hits per modality, ``N = 3 + 6k`` slots, ``d`` size.
"""

from __future__ import annotations

from enum import IntEnum

import torch

LEVELS: tuple[str, ...] = ("basic", "indirect", "direct")


class Relation(IntEnum):
    """Edge types: which two kinds of node an edge joins."""

    SELF = 0
    SCENE_FACE = 1
    SCENE_TEXT = 2
    FACE_TEXT = 3
    INDIRECT_SCENE = 4  # retrieved scene vector -- basic S
    INDIRECT_FACE = 5
    INDIRECT_TEXT = 6
    AUDIO_SCENE = 7  # audio matched through the scene query -- basic S
    AUDIO_FACE = 8
    AUDIO_TEXT = 9


class NodeKind(IntEnum):
    """Node types: role (basic, indirect, direct audio) x query modality."""

    BASIC_SCENE = 0
    BASIC_FACE = 1
    BASIC_TEXT = 2
    INDIRECT_SCENE = 3
    INDIRECT_FACE = 4
    INDIRECT_TEXT = 5
    AUDIO_SCENE = 6
    AUDIO_FACE = 7
    AUDIO_TEXT = 8


_BASIC_PAIRS = (
    (0, 1, Relation.SCENE_FACE),
    (0, 2, Relation.SCENE_TEXT),
    (1, 2, Relation.FACE_TEXT),
)


def num_slots(k: int) -> int:
    return 3 + 6 * k


def indirect_slot(modality: int, hit: int, k: int) -> int:
    return 3 + modality * k + hit


def audio_slot(modality: int, hit: int, k: int) -> int:
    return 3 + 3 * k + modality * k + hit


def slot_kinds(k: int) -> torch.Tensor:
    """``(N,)`` the :class:`NodeKind` of every slot."""
    basic = torch.arange(3)
    per_hit = torch.arange(3).repeat_interleave(k)
    return torch.cat([basic, NodeKind.INDIRECT_SCENE + per_hit, NodeKind.AUDIO_SCENE + per_hit])


def slot_edges(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every edge of the fullest graph on the slot table: ``(2, E)`` indexes, ``(E,)`` types.

    Both directions of each link plus one self-loop per slot; a level keeps the
    edges whose two ends are among its nodes.
    """
    src, dst, rel = [], [], []

    def link(a: int, b: int, r: Relation) -> None:
        src.extend((a, b))
        dst.extend((b, a))
        rel.extend((int(r), int(r)))

    for a, b, r in _BASIC_PAIRS:
        link(a, b, r)
    for m in range(3):
        for j in range(k):
            link(indirect_slot(m, j, k), m, Relation(Relation.INDIRECT_SCENE + m))
            link(audio_slot(m, j, k), m, Relation(Relation.AUDIO_SCENE + m))
    n = num_slots(k)
    src.extend(range(n))
    dst.extend(range(n))
    rel.extend([int(Relation.SELF)] * n)
    return torch.tensor([src, dst], dtype=torch.long), torch.tensor(rel, dtype=torch.long)


def level_mask(
    level: str,
    hit_mask: torch.Tensor,
    retrieve: tuple[bool, bool, bool] = (True, True, True),
    indirect: bool = True,
    direct: bool = True,
) -> torch.Tensor:
    """Which slots a graph level holds: ``hit_mask (b, 3, k)`` -> ``(b, N)`` bool.

    ``hit_mask`` marks the hits the library returned (fewer than k when little
    footage passes the filters); ``retrieve`` / ``indirect`` / ``direct`` are
    the ablation switches (:class:`~dubops.emotion.graph_settings.GraphAblation`).
    """
    if level not in LEVELS:
        raise ValueError(f"graph level {level!r} is unknown; choose one of {LEVELS}")
    b, _, k = hit_mask.shape
    allowed = hit_mask & torch.tensor(retrieve, device=hit_mask.device)[None, :, None]
    basic = torch.ones(b, 3, dtype=torch.bool, device=hit_mask.device)
    none = torch.zeros(b, 3 * k, dtype=torch.bool, device=hit_mask.device)
    with_indirect = level in ("indirect", "direct") and indirect
    with_direct = level == "direct" and direct
    ind = allowed.flatten(1) if with_indirect else none
    aud = allowed.flatten(1) if with_direct else none
    return torch.cat([basic, ind, aud], dim=1)


def build_graph(table: torch.Tensor, mask: torch.Tensor, k: int):
    """The batched graph of the masked slots: a torch_geometric ``Batch`` of b ``Data``.

    Args:
        table: ``(b, N, d)`` node states by slot.
        mask: ``(b, N)`` the level's nodes (:func:`level_mask`).
        k: hits per modality (``N = 3 + 6k``).

    Returns:
        ``Batch`` with ``x (nodes, d)``, ``edge_index``, ``edge_type (E,)``,
        ``kind (nodes,)`` (:class:`NodeKind`), ``slot (nodes,)`` (the node's slot
        in its sample's table) and ``batch`` (its sample).
    """
    from torch_geometric.data import Batch, Data

    b, n, _ = table.shape
    if n != num_slots(k) or mask.shape != (b, n):
        raise ValueError(f"table {tuple(table.shape)} / mask {tuple(mask.shape)} do not fit k={k}")
    edges, types = slot_edges(k)
    edges, types = edges.to(table.device), types.to(table.device)
    kinds = slot_kinds(k).to(table.device)
    graphs = []
    for i in range(b):
        keep = mask[i]
        slots = keep.nonzero().squeeze(1)
        remap = torch.full((n,), -1, dtype=torch.long, device=table.device)
        remap[slots] = torch.arange(len(slots), device=table.device)
        inside = keep[edges[0]] & keep[edges[1]]
        graphs.append(
            Data(
                x=table[i, slots],
                edge_index=remap[edges[:, inside]],
                edge_type=types[inside],
                kind=kinds[slots],
                slot=slots,
            )
        )
    return Batch.from_data_list(graphs)


def scatter_to_table(table: torch.Tensor, graph, x: torch.Tensor) -> torch.Tensor:
    """A new table whose slots in ``graph`` hold ``x (nodes, d)``; the others unchanged.

    This is how the next level's nodes are "initialised from the encoded graph".
    """
    b, n, d = table.shape
    index = graph.batch * n + graph.slot  # (nodes,) flat slot of each node
    flat = table.reshape(b * n, d).index_copy(0, index, x)
    return flat.view(b, n, d)
