"""The progressive emotion graph: wiring, construct-and-encode, eq. (1), ablations, plumbing.

Real torch_geometric graphs and a tiny random DubbingModel; b = 2 samples, k = 3 hits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from dubops.config import load_config
from dubops.emotion.aggregation import HierarchicalAggregation
from dubops.emotion.conditioner import EmotionConditioner
from dubops.emotion.footage_batch import FootageTensors, cached_footage, retrieve_footage
from dubops.emotion.graph import (
    Relation,
    audio_slot,
    build_graph,
    indirect_slot,
    level_mask,
    num_slots,
)
from dubops.emotion.graph_encoder import ProgressiveGraphEncoder
from dubops.emotion.graph_settings import GRAPH_ABLATIONS, GraphConfig, graph_ablation
from dubops.speech.cfm import FlowMatching
from dubops.speech.conditioning import to_mel_rate
from dubops.speech.data import MODEL_NOTEXT
from dubops.speech.dit import DiT
from dubops.speech.dubbing_model import DubbingModel

B, K, D = 2, 3, 256
SMALL_GRAPH = GraphConfig(layers=1)


def _footage(seed: int = 0, b: int = B, k: int = K) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "basic": torch.randn(b, 3, D, generator=g),
        "indirect": torch.randn(b, 3, k, D, generator=g),
        "audio": torch.randn(b, 3, k, D, generator=g),
        "hit_mask": torch.ones(b, 3, k, dtype=torch.bool),
    }


def _edges(graph, sample: int) -> set[tuple[int, int, int]]:
    """(source slot, target slot, relation) of one sample's edges."""
    slots = graph.slot
    keep = graph.batch[graph.edge_index[0]] == sample
    src, dst = graph.edge_index[:, keep]
    return {
        (int(slots[s]), int(slots[d]), int(r))
        for s, d, r in zip(src, dst, graph.edge_type[keep], strict=True)
    }


# --- graph construction -------------------------------------------------------------


def test_each_graph_is_wired_as_the_paper_connects_it():
    hits = torch.ones(B, 3, K, dtype=torch.bool)
    table = torch.randn(B, num_slots(K), 8)
    expected_nodes = {"basic": 3, "indirect": 3 + 3 * K, "direct": 3 + 6 * K}
    for level, nodes in expected_nodes.items():
        graph = build_graph(table, level_mask(level, hits), K)
        assert graph.num_graphs == B and graph.num_nodes == B * nodes
        for i in range(B):
            edges = _edges(graph, i)
            assert len(edges) == graph.edge_index.shape[1] // B
            # S, F, T pairwise, both directions; self-loops on every node.
            for a, b, rel in ((0, 1, Relation.SCENE_FACE), (0, 2, Relation.SCENE_TEXT)):
                assert {(a, b, rel), (b, a, rel)} <= edges
            assert {(1, 2, Relation.FACE_TEXT), (2, 1, Relation.FACE_TEXT)} <= edges
            loops = {e for e in edges if e[2] == Relation.SELF}
            assert {s for s, d, _ in loops if s == d} == {
                int(s) for s in graph.slot[graph.batch == i]
            }
            others = edges - loops
            pairs = 6
            if level in ("indirect", "direct"):
                for m in range(3):  # each retrieved node to the basic node of its modality
                    for j in range(K):
                        s, r = indirect_slot(m, j, K), Relation.INDIRECT_SCENE + m
                        assert {(s, m, r), (m, s, r)} <= others
                        assert len([e for e in others if s in e[:2]]) == 2  # nothing else
                pairs += 2 * 3 * K
            if level == "direct":
                for m in range(3):  # each audio node to the basic node whose query found it
                    for j in range(K):
                        s, r = audio_slot(m, j, K), Relation.AUDIO_SCENE + m
                        assert {(s, m, r), (m, s, r)} <= others
                        assert len([e for e in others if s in e[:2]]) == 2
                pairs += 2 * 3 * K
            assert len(others) == pairs
    # Relation counts of the direct graph for both samples: 6 + 6 + 6 per relation group.
    graph = build_graph(table, level_mask("direct", hits), K)
    counts = torch.bincount(graph.edge_type, minlength=len(Relation)).tolist()
    assert counts == [B * (3 + 6 * K)] + [B * 2] * 3 + [B * 2 * K] * 6


def test_missing_hits_and_retrieval_switches_remove_their_nodes():
    hits = torch.ones(B, 3, K, dtype=torch.bool)
    hits[1, 2, 2] = False  # sample 1's text query found only two clips
    mask = level_mask("direct", hits, retrieve=(False, True, True))
    assert mask[0].sum() == 3 + 2 * 2 * K  # no scene hits, no scene-matched audio
    assert mask[1].sum() == 3 + 2 * (2 * K - 1)
    assert not mask[:, indirect_slot(0, 0, K)].any() and not mask[:, audio_slot(0, 1, K)].any()
    graph = build_graph(torch.randn(B, num_slots(K), 4), mask, K)
    assert graph.num_nodes == int(mask.sum())
    with pytest.raises(ValueError, match="graph level"):
        level_mask("extended", hits)


# --- progressive encoding ------------------------------------------------------------


def test_indirect_and_direct_graphs_start_from_the_previous_encoding():
    torch.manual_seed(0)
    encoder = ProgressiveGraphEncoder(SMALL_GRAPH).eval()
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, module in encoder.encoders.items():
        module.register_forward_hook(
            lambda mod, args, out, name=name: seen.__setitem__(name, (args[0], out))
        )
    footage = _footage()
    with torch.no_grad():
        levels = encoder(footage)
    assert set(levels) == {"basic", "indirect", "direct"}
    (_, basic_out), (ind_in, ind_out), (dir_in, _) = seen["basic"], seen["indirect"], seen["direct"]
    nodes = {"basic": 3, "indirect": 3 + 3 * K}
    # Node order inside a sample follows the slots: the basic nodes come first.
    basic_rows = torch.cat([torch.arange(3) + i * nodes["indirect"] for i in range(B)])
    assert torch.equal(ind_in[basic_rows], basic_out)
    total = 3 + 6 * K
    earlier = torch.cat([torch.arange(nodes["indirect"]) + i * total for i in range(B)])
    assert torch.equal(dir_in[earlier], ind_out)
    # The retrieved nodes start from their projections, not from an encoding.
    table = encoder.node_table(footage)
    assert torch.equal(ind_in[3 : nodes["indirect"]], table[0, 3 : nodes["indirect"]])
    # Outputs: padded per sample, 256 wide.
    assert levels["basic"].h.shape == (B, 3, D)
    assert levels["direct"].h.shape == (B, total, D) and levels["direct"].mask.all()


def test_padded_nodes_are_masked_and_do_not_leak():
    torch.manual_seed(0)
    conditioner = EmotionConditioner(SMALL_GRAPH, 16, D).eval()
    footage = _footage()
    footage["hit_mask"][0, 1, 1:] = False
    visual = torch.randn(B, 20, 16)
    out = conditioner(visual, footage)
    levels = conditioner.graph(footage)
    assert levels["direct"].mask[0].sum() == 3 + 6 * K - 4 and levels["direct"].mask[1].all()
    footage["indirect"][0, 1, 1:] += 100.0  # vectors of hits that do not exist
    footage["audio"][0, 1, 2] -= 50.0
    assert torch.allclose(conditioner(visual, footage), out, atol=1e-5)


# --- aggregation -----------------------------------------------------------------------


def test_aggregation_gives_one_256_vector_per_frame_and_reads_every_level():
    torch.manual_seed(0)
    agg = HierarchicalAggregation(D, 4, 3, ("basic", "indirect", "direct")).eval()
    h = torch.randn(B, 40, D)
    nodes = {
        level: (torch.randn(B, m, D), torch.ones(B, m, dtype=torch.bool))
        for level, m in (("basic", 3), ("indirect", 12), ("direct", 21))
    }
    out = agg(h, nodes)
    assert out.shape == (B, 40, D)
    for level in nodes:
        changed = dict(nodes)
        changed[level] = (nodes[level][0] + 1.0, nodes[level][1])
        assert not torch.allclose(agg(h, changed), out, atol=1e-4), level
    # Without hierarchy only the last graph (all nodes) is attended.
    flat = HierarchicalAggregation(D, 4, 3, ("basic", "indirect", "direct"), False).eval()
    base = flat(h, nodes)
    assert base.shape == (B, 40, D)
    assert torch.equal(
        flat(h, {**nodes, "basic": (nodes["basic"][0] + 1.0, nodes["basic"][1])}), base
    )
    with pytest.raises(ValueError, match="levels"):
        agg(h, {"basic": nodes["basic"]})


# --- ablations -------------------------------------------------------------------------


def _sensitive(conditioner: EmotionConditioner, key: str, index: tuple) -> bool:
    """Whether the output moves when footage[key][index] changes."""
    torch.manual_seed(0)
    visual = torch.randn(B, 12, 16)
    footage = _footage()
    with torch.no_grad():
        base = conditioner(visual, footage)
        footage[key][index] += 3.0
        moved = conditioner(visual, footage)
    return not torch.allclose(base, moved, atol=1e-5)


def _conditioner(name: str) -> EmotionConditioner:
    torch.manual_seed(0)
    return EmotionConditioner(SMALL_GRAPH.model_copy(update={"ablation": name}), 16, D).eval()


def test_every_ablation_name_is_known_and_validated():
    assert len(GRAPH_ABLATIONS) == 10
    with pytest.raises(ValueError, match="no-graph"):
        graph_ablation("no-grpah")
    with pytest.raises(ValueError, match="graph ablation"):
        GraphConfig(ablation="w/o everything")


@pytest.mark.parametrize(
    ("name", "key", "index", "full_reads_it"),
    [
        ("no-scene-retrieval", "indirect", (slice(None), 0), True),
        ("no-scene-retrieval", "audio", (slice(None), 0), True),
        ("no-face-retrieval", "indirect", (slice(None), 1), True),
        ("no-text-retrieval", "audio", (slice(None), 2), True),
        ("no-retrieval", "indirect", (slice(None),), True),
        ("no-retrieval", "audio", (slice(None),), True),
        ("no-indirect", "indirect", (slice(None),), True),
        ("no-direct", "audio", (slice(None),), True),
    ],
)
def test_retrieval_and_node_ablations_cut_exactly_their_inputs(name, key, index, full_reads_it):
    assert _sensitive(_conditioner("none"), key, index) == full_reads_it
    assert not _sensitive(_conditioner(name), key, index)


def test_no_indirect_keeps_audio_and_no_direct_keeps_indirect():
    assert _sensitive(_conditioner("no-indirect"), "audio", (slice(None),))
    assert _sensitive(_conditioner("no-direct"), "indirect", (slice(None),))
    assert _sensitive(_conditioner("no-scene-retrieval"), "indirect", (slice(None), 1))


def _basic_scene_state(name: str, key: str, index: tuple) -> bool:
    """Whether H_beg's scene node moves when footage[key][index] changes."""
    conditioner = _conditioner(name)
    footage = _footage()
    with torch.no_grad():
        base = conditioner.graph(footage)["basic"].h[:, 0]
        footage[key][index] += 3.0
        moved = conditioner.graph(footage)["basic"].h[:, 0]
    return not torch.allclose(base, moved, atol=1e-5)


def test_graph_and_construct_encode_ablations_change_the_encoding():
    face = (slice(None), 1)
    # Graph modelling: the scene node hears the face node; without it, only itself.
    assert _basic_scene_state("none", "basic", face)
    assert not _basic_scene_state("no-graph", "basic", face)
    # Construct-and-encode: H_beg is encoded before any retrieved node exists;
    # one graph of every node lets retrieved nodes reach the basic nodes' states.
    assert not _basic_scene_state("none", "indirect", (slice(None),))
    assert _basic_scene_state("no-construct-encode", "indirect", (slice(None),))
    assert set(_conditioner("no-construct-encode").graph.encoders) == {"all"}
    assert len(_conditioner("no-graph").graph.encoders) == 0


def test_every_ablation_changes_the_output_with_shared_weights():
    torch.manual_seed(0)
    visual = torch.randn(B, 12, 16)
    footage = _footage()
    full = _conditioner("none")
    state = full.state_dict()
    with torch.no_grad():
        reference = full(visual, footage)
        for name in GRAPH_ABLATIONS:
            if name == "none":
                continue
            ablated = _conditioner(name)
            shared = {k: v for k, v in state.items() if k in ablated.state_dict()}
            ablated.load_state_dict(shared, strict=False)
            out = ablated(visual, footage)
            assert out.shape == reference.shape
            assert not torch.allclose(out, reference, atol=1e-4), name


# --- the DubbingModel plumbing ---------------------------------------------------------


def _speech_config(drop: float = 0.05):
    return load_config(
        "tiny",
        overrides=[
            "speech.dit={dim: 64, depth: 2, heads: 2, dim_head: 32, text_dim: 32, "
            "conv_layers: 1, text_num_embeds: 40}",
            "speech.controlnet.blocks=1",
            "speech.controlnet.visual_dim=16",
            "speech.controlnet.frame_size=16",
            f"speech.controlnet.condition_drop_prob={drop}",
            "speech.duration={dim: 16, layers: 1}",
            "speech.sampler.nfe=2",
        ],
    ).speech


def _model(speech, graph: bool, seed: int = 0) -> DubbingModel:
    torch.manual_seed(seed)
    flow = FlowMatching(DiT(speech.dit), speech.flow, notext_id=MODEL_NOTEXT)
    module = EmotionConditioner(SMALL_GRAPH, 16, D) if graph else None
    return DubbingModel(flow, speech, 30, emotion_module=module)


def _tuned(model: DubbingModel) -> None:
    """A trained-looking DiT and ControlNet: the zero-initialised layers have moved."""
    with torch.no_grad():
        for p in [*model.flow.parameters(), *model.controlnet.parameters()]:
            p.add_(torch.randn_like(p) * 0.05)


def _batch(b: int = B, n: int = 40, f: int = 11) -> dict:
    g = torch.Generator().manual_seed(3)
    p = 6
    return {
        "mel": torch.randn(b, n, 100, generator=g),
        "mel_lengths": torch.tensor([n, n - 6])[:b],
        "text": torch.randint(0, 30, (b, n), generator=g),
        "phonemes": torch.randint(3, 30, (b, p), generator=g),
        "phoneme_mask": torch.ones(b, p, dtype=torch.bool),
        "durations": torch.full((b, p), n // p),
        "frames": torch.randint(0, 255, (b, f, 3, 16, 16), generator=g, dtype=torch.uint8),
        "frame_lengths": torch.tensor([f, f - 2])[:b],
        "labels": {
            name: torch.zeros(b, dtype=torch.long)
            for name in ("scene_type", "gender", "age", "emotion")
        },
    }


def test_gradients_reach_the_graph_through_the_controlnet_loss():
    speech = _speech_config(drop=0.0)
    model = _model(speech, graph=True).train()
    _tuned(model)
    batch = {**_batch(), "footage": _footage()}
    loss, terms = model.training_loss(batch)
    loss.backward()
    assert set(terms) == {"flow_loss", "duration_loss"}
    module = model.emotion_module
    for part in (
        module.graph.encoders["basic"],
        module.graph.encoders["direct"],
        module.aggregation,
    ):
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    assert all(p.grad is None for p in model.flow.parameters())


def test_frozen_parts_get_no_gradient_and_stay_in_eval_while_the_graph_trains():
    speech = _speech_config(drop=0.0)
    model = _model(speech, graph=True)
    _tuned(model)
    model.freeze(GraphConfig(frozen=["duration", "controlnet", "visual"]).frozen)
    model.train()
    assert model.frozen_parts == ("visual", "controlnet", "duration")  # the table's order
    assert not model.controlnet.training and not model.visual.training
    assert model.fusion.training and model.emotion_module.training
    loss, _ = model.training_loss({**_batch(), "footage": _footage()})
    loss.backward()
    for name in ("visual", "controlnet", "duration"):
        assert all(p.grad is None for p in getattr(model, name).parameters()), name
    for part in (model.fusion, model.emotion_module):
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    with pytest.raises(ValueError, match=r"graph.frozen names unknown part\(s\) \['dit'\]"):
        GraphConfig(frozen=["dit"])


def test_a_model_without_graph_is_unchanged():
    speech = _speech_config()
    plain = _model(speech, graph=False).eval()
    assert not any("emotion_module" in k for k in plain.state_dict())
    # The pre-graph formula for the condition, written out.
    b = _batch()
    keep_v, keep_c = torch.tensor([True, False]), torch.tensor([True, True])
    with torch.no_grad():
        video = plain.visual(b["frames"])
        visual = to_mel_rate(video, b["frame_lengths"], b["mel_lengths"], 40)
        tokens = plain.conclusion(b["labels"], keep_c)
        expected = plain.fusion(visual, keep_v, tokens, None)
        got, _, _ = plain.condition(
            b["frames"], b["frame_lengths"], b["labels"], b["mel_lengths"], 40, keep_v, keep_c
        )
    assert torch.equal(got, expected)
    # Same weights with a graph attached but no footage: the same loss, draw for draw.
    graphed = _model(speech, graph=True).eval()
    graphed.load_state_dict(plain.state_dict(), strict=False)
    torch.manual_seed(7)
    a, _ = plain.training_loss(b)
    torch.manual_seed(7)
    c, _ = graphed.training_loss(b)
    assert torch.equal(a, c)
    # Old checkpoints (no emotion_module keys) still load strictly.
    _model(speech, graph=False, seed=1).load_state_dict(plain.state_dict(), strict=True)
    with pytest.raises(ValueError, match="no emotion graph"):
        plain.training_loss({**b, "footage": _footage()})


def test_dub_clip_mel_uses_the_footage():
    from dubops.speech.generator import dub_clip_mel

    speech = _speech_config()
    model = _model(speech, graph=True).eval()
    _tuned(model)
    item = {
        "phonemes": torch.randint(3, 30, (5,)),
        "frames": torch.randint(0, 255, (10, 3, 16, 16), dtype=torch.uint8),
        "labels": {name: 0 for name in ("scene_type", "gender", "age", "emotion")},
    }
    prompt = torch.randn(8, 100)
    one = _footage(b=1)
    mel = dub_clip_mel(model, item, prompt, 30, speech, footage=one)
    assert mel.shape == (30, 100) and torch.isfinite(mel).all()
    other = {**one, "audio": one["audio"] + 2.0}
    assert not torch.allclose(dub_clip_mel(model, item, prompt, 30, speech, footage=other), mel)


# --- footage tensors from retrieval ------------------------------------------------------


@dataclass
class _Hits:
    clip_ids: list[str]
    similarities: np.ndarray
    emotions: list[str]
    speakers: list[str]
    audio_vectors: np.ndarray
    audio_paths: list[str]


@dataclass
class _Retrieved:
    modalities: dict[str, _Hits]


@dataclass
class _Info:
    version: str
    dim: int = D


class _ToyLibrary:
    """The FootageLibrary contract on 6 clips: top-k by cosine, ids excluded as asked."""

    def __init__(self, version: str = "v1") -> None:
        rng = np.random.default_rng(0)
        self.ids = [f"c{i}" for i in range(6)]
        self.vectors = {
            m: rng.standard_normal((6, D)).astype(np.float32)
            for m in ("scene", "face", "text", "audio")
        }
        self.info = _Info(version)
        self.queries = 0

    def clip_vectors(self, clip_ids):
        rows = [self.ids.index(c) for c in clip_ids]
        return {m: v[rows] for m, v in self.vectors.items()}

    def query_batch(self, scene, face, text, k=3, exclude_clips=None, **_):
        self.queries += 1
        out = []
        for i in range(len(scene)):
            banned = set(exclude_clips[i]) if exclude_clips else set()
            mods = {}
            for m, q in (("scene", scene[i]), ("face", face[i]), ("text", text[i])):
                sims = self.vectors[m] @ q
                order = [j for j in np.argsort(-sims) if self.ids[j] not in banned][
                    : k if m != "face" else 2
                ]
                mods[m] = _Hits(
                    [self.ids[j] for j in order],
                    sims[order],
                    ["joy"] * len(order),
                    ["s"] * len(order),
                    self.vectors["audio"][order],
                    [""] * len(order),
                )
            out.append(_Retrieved(mods))
        return out


def test_retrieval_becomes_graph_tensors_without_the_query_clip(tmp_path):
    library = _ToyLibrary()
    footage = retrieve_footage(library, ["c0", "c3"], k=3, exclude_self=True)
    assert footage.basic.shape == (2, 3, D) and footage.indirect.shape == (2, 3, 3, D)
    assert torch.equal(footage.basic[1, 1], torch.from_numpy(library.vectors["face"][3]))
    # Face found only two clips: the third slot is masked and zero.
    assert footage.hit_mask[:, 0].all() and footage.hit_mask[:, 1].sum(-1).tolist() == [2, 2]
    assert footage.indirect[:, 1, 2].abs().sum() == 0
    # Indirect nodes hold the hits' own vectors of the query modality; audio their audio.
    sims = library.vectors["scene"] @ library.vectors["scene"][0]
    best = next(j for j in np.argsort(-sims) if j != 0)
    assert torch.equal(footage.indirect[0, 0, 0], torch.from_numpy(library.vectors["scene"][best]))
    assert torch.equal(footage.audio[0, 0, 0], torch.from_numpy(library.vectors["audio"][best]))
    assert not any(torch.equal(footage.indirect[0, 0, j], footage.basic[0, 0]) for j in range(3))
    batch = footage.batch(["c3", "c0"])
    assert torch.equal(batch["basic"][0], footage.basic[1])
    with pytest.raises(KeyError, match="c9"):
        footage.batch(["c9"])


def test_footage_cache_is_keyed_by_library_version(tmp_path):
    library = _ToyLibrary("v1")
    first = cached_footage(library, ["c0", "c1"], 3, tmp_path)
    again = cached_footage(library, ["c1"], 3, tmp_path)
    assert library.queries == 1 and torch.equal(again.basic, first.basic)
    loaded, version = FootageTensors.load(next(tmp_path.glob("footage-v1*")))
    assert version == "v1" and loaded.clip_ids == ["c0", "c1"]
    assert loaded.hit_mask.dtype == torch.bool
    cached_footage(_ToyLibrary("v2"), ["c0"], 3, tmp_path)
    assert len(list(tmp_path.glob("footage-*.safetensors"))) == 2


def test_footage_content_is_not_drowned_at_initialisation():
    """Unit-norm library vectors must move the emotion sequence, not just the node types."""
    torch.manual_seed(0)
    conditioner = EmotionConditioner(GraphConfig(), 16, D).eval()
    unit = {
        key: (v / v.norm(dim=-1, keepdim=True) if key != "hit_mask" else v)
        for key, v in _footage().items()
    }
    swapped = {key: v.flip(0) for key, v in unit.items()}
    visual = torch.randn(1, 30, 16).repeat(B, 1, 1)  # the same video for both samples
    with torch.no_grad():
        out, other = conditioner(visual, unit), conditioner(visual, swapped)
    assert float((out - other).abs().mean()) > 0.1 * float(out.abs().mean())
