"""Duration predictor: exact slot fitting, masking, conditions, and learning on the corpus."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dubops.data.datasets import PAD_ID, PhonemeVocab
from dubops.speech.duration import DurationPredictor, duration_loss, fit_frames, predict_frames
from dubops.speech.settings import DurationConfig


def test_frames_fit_the_slot_exactly():
    rng = np.random.default_rng(0)
    for _ in range(500):
        p = int(rng.integers(1, 40))
        pred = torch.from_numpy(rng.normal(2.0, 1.5, p)).float()
        pause = torch.from_numpy(rng.random(p) < 0.25)
        spoken = int((~pause).sum())
        total = int(rng.integers(spoken, spoken + 400))
        frames = predict_frames(pred, pause=pause, total_frames=total)
        assert int(frames.sum()) == total
        assert (frames[~pause] >= 1).all() and (frames >= 0).all()
    # Proportional where no minimum binds: (1 : 3 : 6) of 20 frames.
    raw = np.array([1.0, 3.0, 6.0])
    assert fit_frames(raw, np.ones(3, dtype=np.int64), 20).tolist() == [2, 6, 12]
    # All-zero predictions still fill the slot, spread evenly.
    assert fit_frames(np.zeros(4), np.ones(4, dtype=np.int64), 10).sum() == 10


def test_frames_without_total_and_too_short_slots():
    pred = torch.log1p(torch.tensor([[0.2, 4.0, 0.0, 7.6], [3.0, 1.0, 0.0, 0.0]]))
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    pause = torch.tensor([[False, False, True, False], [False, False, False, False]])
    frames = predict_frames(pred, mask, pause)
    assert frames.tolist() == [[1, 4, 0, 8], [3, 1, 0, 0]]  # padding 0, spoken >= 1
    fitted = predict_frames(pred, mask, pause, total_frames=[30, 9])
    assert fitted.sum(1).tolist() == [30, 9] and fitted[1, 2:].tolist() == [0, 0]
    with pytest.raises(ValueError, match="cannot hold 3 spoken phonemes"):
        predict_frames(pred[0], pause=pause[0], total_frames=2)


def test_padding_does_not_change_predictions_and_conditions_are_used():
    torch.manual_seed(0)
    model = DurationPredictor(20, dim=32, layers=2, heads=2, cond_dim=6, visual_dim=8).eval()
    ids = torch.randint(3, 20, (1, 7))
    padded = torch.cat([ids, torch.full((1, 5), PAD_ID)], dim=1)
    cond, visual = torch.randn(1, 6), torch.randn(1, 10, 8)
    vis_pad = torch.cat([visual, torch.randn(1, 4, 8) * 50], dim=1)
    vis_mask = torch.arange(14)[None] < 10
    with torch.no_grad():
        short = model(ids, cond=cond, visual=visual)
        long = model(padded, cond=cond, visual=vis_pad, visual_mask=vis_mask)
        no_video = model(ids, cond=cond)
        other_cond = model(ids, cond=torch.randn(1, 6), visual=visual)
    torch.testing.assert_close(long[:, :7], short, atol=1e-5, rtol=1e-5)
    assert (long[:, 7:] == 0).all()
    assert not torch.allclose(short, no_video) and not torch.allclose(short, other_cond)
    target = torch.tensor([[3, 5, 2, 8, 1, 4, 6, 0, 0, 0, 0, 0]])
    garbage = target.clone()
    garbage[0, 7:] = 99
    mask = padded != PAD_ID
    a = duration_loss(long, target, mask)
    b = duration_loss(long, garbage, mask)
    torch.testing.assert_close(a.loss, b.loss)
    with pytest.raises(ValueError, match="no cond_dim"):
        DurationPredictor.from_config(DurationConfig(dim=32, layers=1), 20)(ids, cond=cond)


def _batches(df: pd.DataFrame, vocab: PhonemeVocab, size: int, rng: np.random.Generator):
    order = rng.permutation(len(df))
    for start in range(0, len(order) - size + 1, size):
        yield _collate(df.iloc[order[start : start + size]], vocab)


def _collate(rows: pd.DataFrame, vocab: PhonemeVocab):
    longest = max(len(p) for p in rows["phonemes"])
    ids = torch.zeros(len(rows), longest, dtype=torch.long)
    frames = torch.zeros(len(rows), longest, dtype=torch.long)
    for i, (ph, fr) in enumerate(zip(rows["phonemes"], rows["phoneme_frames"], strict=True)):
        ids[i, : len(ph)] = torch.tensor(vocab.encode(list(ph)))
        frames[i, : len(fr)] = torch.tensor(np.asarray(fr, dtype=np.int64))
    return ids, frames, ids != PAD_ID


def test_training_on_the_tiny_corpus_lowers_the_loss(small_synthetic_corpus):
    manifest = pd.read_parquet(small_synthetic_corpus / "manifest.parquet")
    vocab = PhonemeVocab.from_manifest(manifest)
    train = manifest[manifest["split"] == "train"]
    val = _collate(manifest[manifest["split"] == "val"], vocab)
    torch.manual_seed(0)
    model = DurationPredictor(len(vocab), dim=64, layers=2, heads=2, dropout=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)

    def evaluate(batch):
        ids, frames, mask = batch
        model.eval()
        with torch.no_grad():
            return duration_loss(model(ids, mask), frames, mask)

    before = evaluate(val)
    rng = np.random.default_rng(0)
    threads = torch.get_num_threads()
    # A model this small gains nothing from threads; on a shared CPU they cost 10x.
    torch.set_num_threads(1)
    try:
        steps = 0
        while steps < 234:  # batches of 16 from the training split, epoch after epoch
            for ids, frames, mask in _batches(train, vocab, 16, rng):
                steps += 1
                model.train()
                loss = duration_loss(model(ids, mask), frames, mask).loss
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    after = evaluate(val)
    print(
        f"val duration loss {before.loss:.3f} -> {after.loss:.3f} "
        f"(log MSE {before.log_mse:.3f} -> {after.log_mse:.3f}, "
        f"total rel. L1 {before.total_l1:.3f} -> {after.total_l1:.3f})"
    )
    assert after.loss < 0.2 * before.loss
    assert after.log_mse < 0.5 and after.total_l1 < 0.3


def test_onset_error_counts_where_spoken_phonemes_start_in_video_frames():
    from dubops.speech.duration_refine import onset_error

    target = torch.tensor([4, 8, 0, 8])  # starts 0, 4, 12, 12
    spoken = torch.tensor([False, True, False, True])
    assert onset_error(target, target, spoken, 3.75) == 0.0
    # The leading pause 4 frames longer: both spoken starts move 4 mel frames late.
    late = torch.tensor([8, 8, 0, 4])
    assert onset_error(late, target, spoken, 4.0) == pytest.approx(1.0)
