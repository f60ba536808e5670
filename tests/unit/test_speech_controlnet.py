"""ControlNet at step 0 equals the pretrained DiT; conditions keep their shapes."""

from __future__ import annotations

import pytest
import torch

from dubops.speech.cfm import FlowMatching
from dubops.speech.conditioning import (
    ConclusionEmbedding,
    ConditionFusion,
    FrameEncoder,
    to_mel_rate,
)
from dubops.speech.controlnet import ControlNet
from dubops.speech.dit import DiT
from dubops.speech.settings import DiTConfig, SamplerConfig

SMALL = DiTConfig(
    dim=64, depth=3, heads=4, dim_head=16, text_dim=32, conv_layers=1, text_num_embeds=20
)


def _trained_looking_dit(seed: int = 0) -> DiT:
    torch.manual_seed(seed)
    dit = DiT(SMALL).eval()
    with torch.no_grad():  # leave AdaLN-zero so the output is not trivially zero
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return dit


def _labels(b: int) -> dict[str, torch.Tensor]:
    return {
        name: torch.zeros(b, dtype=torch.long)
        for name in ("scene_type", "gender", "age", "emotion")
    }


def test_step_zero_equals_the_base_dit_in_a_forward_pass():
    dit = _trained_looking_dit()
    net = ControlNet(dit, blocks=2)
    x, cond = torch.randn(2, 30, 100), torch.randn(2, 30, 100)
    text = torch.randint(0, 20, (2, 30))
    t = torch.tensor([0.2, 0.7])
    condition = torch.randn(2, 30, 64) * 3
    with torch.no_grad():
        plain = dit(x, cond, text, t)
        controlled = dit(x, cond, text, t, control=net.control(condition))
    assert plain.abs().max() > 1e-2
    assert torch.equal(plain, controlled)


def test_step_zero_equals_the_base_dit_through_sampling_and_moves_once_trained():
    dit = _trained_looking_dit(1)
    net = ControlNet(dit, blocks=3)
    flow = FlowMatching(dit)
    cond, text = torch.randn(1, 10, 100), torch.randint(0, 20, (1, 20))
    condition = torch.randn(1, 25, 64)
    sampler = SamplerConfig(nfe=8)
    plain = flow.sample(cond, text, 25, seed=0, sampler=sampler)
    controlled = flow.sample(
        cond, text, 25, seed=0, sampler=sampler, control=net.control(condition.repeat(2, 1, 1))
    )
    assert torch.equal(plain, controlled)
    with torch.no_grad():
        net.zero_out[0].weight.normal_(0, 0.1)
    moved = flow.sample(
        cond, text, 25, seed=0, sampler=sampler, control=net.control(condition.repeat(2, 1, 1))
    )
    assert (moved - plain).abs().max() > 1e-3


def test_controlnet_deeper_than_the_dit_is_a_clear_error():
    with pytest.raises(ValueError, match=r"speech\.controlnet\.blocks"):
        ControlNet(DiT(SMALL), blocks=5)


def test_conditions_reach_the_mel_rate_and_nulls_replace_dropped_ones():
    enc = FrameEncoder(32)
    frames = torch.randint(0, 255, (2, 10, 3, 48, 48), dtype=torch.uint8)
    video = enc(frames)
    assert video.shape == (2, 10, 32)
    visual = to_mel_rate(video, torch.tensor([10, 6]), torch.tensor([37, 22]), 40)
    assert visual.shape == (2, 40, 32)
    assert torch.allclose(visual[1, 0], video[1, 0]) and torch.allclose(visual[1, 21], video[1, 5])
    assert visual[1, 22:].abs().max() == 0
    concl = ConclusionEmbedding(32)
    tokens = concl(_labels(2), keep=torch.tensor([True, False]))
    assert torch.equal(tokens[1], concl.null)
    fusion = ConditionFusion(32, emotion_dim=16, model_dim=64, heads=4)
    out = fusion(visual, torch.tensor([True, False]), tokens, emotion=torch.randn(2, 3, 16))
    assert out.shape == (2, 40, 64)
    no_emotion = fusion(visual, torch.tensor([True, False]), tokens)
    assert not torch.allclose(out, no_emotion)


def test_the_conclusion_fields_not_read_are_served_as_their_nulls():
    with torch.no_grad():
        full = ConclusionEmbedding(32)
        full.null.normal_()
        part = ConclusionEmbedding(32, ["scene_type", "emotion"])
        part.load_state_dict(full.state_dict())  # the same weights: only the reading differs
    assert "read" not in full.state_dict()
    labels, keep = _labels(2), torch.tensor([True, False])
    assert torch.equal(part(labels, keep), full(labels, keep))  # training reads all four
    full.eval(), part.eval()
    a, b = full(labels, keep), part(labels, keep)
    assert torch.equal(b[:, [0, 3]], a[:, [0, 3]])  # scene type and emotion as before
    assert torch.equal(b[0, 1:3], full.null[1:3]) and not torch.equal(a[0, 1:3], full.null[1:3])
    assert torch.equal(b[1], full.null)  # a dropped conclusion stays all nulls
    with pytest.raises(ValueError, match="unknown conclusion fields"):
        ConclusionEmbedding(32, ["mood"])


def test_clip_frame_encoder_loads_a_local_checkpoint(tmp_path):
    """The base preset's visual encoder: a CLIP vision tower from a local folder, frozen."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from dubops.speech.conditioning import ClipFrameEncoder

    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    CLIPVisionModel(config).save_pretrained(tmp_path / "clip")
    enc = ClipFrameEncoder(str(tmp_path / "clip"), dim=24)
    frames = torch.randint(0, 255, (2, 3, 3, 48, 48), dtype=torch.uint8)
    out = enc(frames)
    assert out.shape == (2, 3, 24)
    assert not any(p.requires_grad for p in enc.clip.parameters())
    assert all(p.requires_grad for p in enc.proj.parameters())


def test_compiled_sampler_equals_eager_with_and_without_control():
    """``sampler.compile`` changes speed, not samples: across lengths and a ControlNet."""
    dit = _trained_looking_dit(2)
    net = ControlNet(dit, blocks=2)
    with torch.no_grad():  # a ControlNet that is no longer the identity
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    flow = FlowMatching(dit)
    eager, compiled = SamplerConfig(nfe=4), SamplerConfig(nfe=4, compile=True)
    for n, total in ((10, 24), (12, 31)):  # a second length reuses the dynamic graph
        cond, text = torch.randn(1, n, 100), torch.randint(0, 20, (1, total - 4))
        control = net.control(torch.randn(2, total, 64))
        for ctrl in (None, control):
            a = flow.sample(cond, text, total, sampler=eager, seed=0, control=ctrl)
            b = flow.sample(cond, text, total, sampler=compiled, seed=0, control=ctrl)
            torch.testing.assert_close(b, a, atol=1e-4, rtol=0)


def test_compiled_sampler_is_never_stale_after_weights_change():
    """Frozen weights are constants in the compiled code: after an in-place update
    (DiT or ControlNet), through the same or a new wrapper, samples still equal eager."""
    from dubops.speech.frozen_compile import modules_in, weight_versions

    dit = _trained_looking_dit(3)
    net = ControlNet(dit, blocks=1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    eager, compiled = SamplerConfig(nfe=3), SamplerConfig(nfe=3, compile=True)
    cond, text = torch.randn(1, 8, 100), torch.randint(0, 20, (1, 20))
    features = torch.randn(2, 24, 64)
    assert modules_in(net.control(features)) == [net]
    assert modules_in(dit.step) == [dit] and modules_in(None) == []

    def same(flow: FlowMatching, control) -> None:
        a = flow.sample(cond, text, 24, sampler=eager, seed=0, control=control)
        b = flow.sample(cond, text, 24, sampler=compiled, seed=0, control=control)
        torch.testing.assert_close(b, a, atol=1e-4, rtol=0)

    flow = FlowMatching(dit)
    same(flow, net.control(features))  # compiles: both models frozen
    before = weight_versions(net)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05)
    assert weight_versions(net) != before
    same(flow, net.control(features))
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(0.01)
    same(flow, None)
    same(FlowMatching(dit), None)  # a new wrapper would reuse the old frozen code
