"""The flow objective's audio context: the clip itself (F5) or its timbre prompt (as inferred)."""

from __future__ import annotations

import pytest
import torch

from dubops.speech.context import build_context, prompt_draws, shift_frames
from dubops.speech.settings import FlowMatchingConfig
from tests.fixtures.random_generator import random_generator

NOTEXT = 1
MASK = (0.7, 1.0)


def _batch(b: int = 2, m: int = 4) -> dict:
    """Clips of 6 and 4 frames (aligned text 10+frame), prompts of 3 and 5 frames."""
    torch.manual_seed(0)
    lengths = torch.tensor([6, 4])[:b]
    prompt_lengths = torch.tensor([3, 5])[:b]
    mel = torch.randn(b, 6, m)
    text = torch.arange(10, 16).repeat(b, 1)
    for i, n in enumerate(lengths.tolist()):
        mel[i, n:] = 0
        text[i, n:] = -1
    prompt = torch.randn(b, 5, m)
    prompt[0, 3:] = 0
    return {
        "mel": mel,
        "mel_lengths": lengths,
        "text": text,
        "prompt_mel": prompt,
        "prompt_lengths": prompt_lengths,
    }


def test_prompt_context_is_the_prompt_then_the_whole_clip_and_hides_the_clip():
    batch = _batch()
    ctx = build_context(batch, prompt_draws("prompt", 2), NOTEXT, MASK)
    assert ctx.offsets.tolist() == [3, 5]
    assert ctx.lengths.tolist() == [9, 9]
    for i, (p, n) in enumerate([(3, 6), (5, 4)]):
        assert torch.equal(ctx.mel[i, :p], batch["prompt_mel"][i, :p])
        assert torch.equal(ctx.mel[i, p : p + n], batch["mel"][i, :n])
        assert (ctx.text[i, :p] == NOTEXT).all()
        assert torch.equal(ctx.text[i, p : p + n], batch["text"][i, :n])
        assert ctx.hidden[i].nonzero().flatten().tolist() == list(range(p, p + n))
    assert torch.equal(ctx.clip_mask(batch["mel_lengths"]), ctx.hidden)


def test_self_context_keeps_the_clip_and_hides_a_span_of_it():
    batch = _batch()
    ctx = build_context(batch, prompt_draws("self", 2), NOTEXT, MASK)
    assert ctx.offsets.tolist() == [0, 0]
    assert torch.equal(ctx.mel, batch["mel"])
    assert torch.equal(ctx.text, batch["text"])
    for i, n in enumerate([6, 4]):
        hidden = ctx.hidden[i].nonzero().flatten().tolist()
        assert hidden and hidden[-1] < n and len(hidden) >= int(0.7 * n)
        assert hidden == list(range(hidden[0], hidden[0] + len(hidden)))  # one span


def test_mixed_draws_both_and_unknown_modes_are_named():
    draws = prompt_draws("mixed", 400, torch.Generator().manual_seed(0))
    assert 150 < int(draws.sum()) < 250
    with pytest.raises(ValueError, match="prompt"):
        prompt_draws("prosody", 2)


def test_shift_frames_moves_each_sample_by_its_offset():
    x = torch.arange(1, 7, dtype=torch.float32).reshape(2, 3, 1)
    out = shift_frames(x, torch.tensor([0, 2]), 5)
    assert out[..., 0].tolist() == [[1, 2, 3, 0, 0], [0, 0, 4, 5, 6]]


def _clip_batch(model) -> dict:
    torch.manual_seed(1)
    b, n, f = 2, 24, 7
    size = model.config.controlnet.frame_size
    return {
        "mel": torch.randn(b, n, 100),
        "mel_lengths": torch.tensor([n, 20]),
        "text": torch.randint(3, 20, (b, n)),
        "phonemes": torch.randint(3, 20, (b, 5)),
        "phoneme_mask": torch.ones(b, 5, dtype=torch.bool),
        "durations": torch.full((b, 5), 4),
        "frames": torch.randint(0, 255, (b, f, 3, size, size), dtype=torch.uint8),
        "frame_lengths": torch.tensor([f, 6]),
        "labels": {k: torch.zeros(b, dtype=torch.long) for k in CONCLUSION_KEYS},
        "prompt_mel": torch.randn(b, 10, 100),
        "prompt_lengths": torch.tensor([10, 8]),
    }


CONCLUSION_KEYS = ("scene_type", "gender", "age", "emotion")


def test_a_prompt_trained_model_reads_its_prompt_and_a_self_trained_one_does_not():
    model = random_generator("speech.controlnet.condition_drop_prob=0").model
    model.flow.config = FlowMatchingConfig(audio_drop_prob=0.0, cond_drop_prob=0.0)
    with torch.no_grad():  # leave AdaLN-zero, whose output ignores every input
        for p in model.flow.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    batch = _clip_batch(model)
    other = {**batch, "prompt_mel": batch["prompt_mel"] + 3.0}

    def loss(context: str, b: dict) -> float:
        model.context = context
        torch.manual_seed(5)
        value, terms = model.training_loss(b)
        assert set(terms) == {"flow_loss", "duration_loss"}
        return float(value.detach())

    assert loss("self", batch) == loss("self", other)
    assert loss("prompt", batch) != loss("prompt", other)
    assert torch.isfinite(torch.tensor(loss("mixed", batch)))


def test_the_prompt_frames_read_the_no_video_embedding_as_at_inference():
    model = random_generator().model.eval()
    batch = _clip_batch(model)
    keep = torch.ones(2, dtype=torch.bool)
    tokens_keep = torch.ones(2, dtype=torch.bool)
    offsets = batch["prompt_lengths"]
    width = int((offsets + batch["mel_lengths"]).max())
    with torch.no_grad():
        shifted, _, _ = model.condition(
            batch["frames"],
            batch["frame_lengths"],
            batch["labels"],
            batch["mel_lengths"],
            width,
            keep,
            tokens_keep,
            offsets=offsets,
        )
        blank = torch.zeros(2, width, dtype=torch.bool)
        no_video, _, _ = model.condition(
            batch["frames"],
            batch["frame_lengths"],
            batch["labels"],
            batch["mel_lengths"],
            width,
            blank,
            tokens_keep,
        )
    assert torch.allclose(shifted[0, :10], no_video[0, :10], atol=1e-6)
    assert not torch.allclose(shifted[0, 10:], no_video[0, 10:], atol=1e-3)


def test_a_stage_may_drop_the_conclusion_at_its_own_rate():
    model = random_generator("speech.controlnet.condition_drop_prob=0").model
    model.flow.config = FlowMatchingConfig(audio_drop_prob=0.0, cond_drop_prob=0.0)
    with torch.no_grad():  # leave the zero-initialised layers, whose output ignores every input
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    batch = _clip_batch(model)
    other = {**batch, "labels": {k: torch.ones(2, dtype=torch.long) for k in CONCLUSION_KEYS}}

    def loss(b: dict) -> float:
        torch.manual_seed(5)
        return float(model.training_loss(b)[0].detach())

    assert model.conclusion_drop_prob is None  # condition_drop_prob's 0: always read
    assert loss(batch) != loss(other)
    model.conclusion_drop_prob = 1.0  # never read, the video and the script still are
    assert loss(batch) == loss(other)
    assert loss(batch) != loss({**batch, "frames": batch["frames"] // 2})


def test_the_model_serves_the_conclusion_fields_its_speech_settings_name():
    every = "speech.controlnet.conclusion_fields=[scene_type,gender,age,emotion]"
    assert random_generator(every).model.conclusion.read.all()
    # the tiny preset serves scene type and emotion
    assert random_generator().model.conclusion.read.tolist() == [True, False, False, True]
