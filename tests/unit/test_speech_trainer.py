"""The speech trainer on a toy flow-matching model: schedule, batching, EMA, exact resume."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from dubops.errors import StageTimeLimitError
from dubops.speech.batching import DynamicBatchSampler, pack_by_frames
from dubops.speech.checkpoint import (
    EMA_FILE,
    MODEL_FILE,
    STATE_FILE,
    latest_checkpoint,
    list_checkpoints,
    load_weights,
)
from dubops.speech.ema import EMA
from dubops.speech.train_config import TrainConfig
from dubops.speech.trainer import Trainer, lr_factor

MEL = 8


class ToyFlow(nn.Module):
    """Predicts the flow-matching velocity per frame; draws noise, time and dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(MEL + 1, 16), nn.GELU(), nn.Dropout(0.2), nn.Linear(16, MEL)
        )
        self.frozen = nn.Linear(MEL, MEL)
        self.frozen.requires_grad_(False)

    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        mel, lengths = batch["mel"], batch["mel_lengths"]  # (b, n, m), (b,)
        x0 = torch.randn_like(mel)
        t = torch.rand(mel.shape[0], 1, 1, device=mel.device).expand(-1, mel.shape[1], 1)
        xt = (1 - t) * x0 + t * self.frozen(mel)
        pred = self.net(torch.cat([xt, t], dim=-1))
        mask = torch.arange(mel.shape[1], device=mel.device)[None] < lengths[:, None]
        loss = ((pred - (mel - x0)) ** 2).mean(-1)[mask].mean()
        return loss, {"mse": float(loss.detach())}


def _dataset(n: int, seed: int) -> tuple[list[dict], list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(5, 40, (n,), generator=g).tolist()
    return [{"mel": torch.randn(k, MEL, generator=g)} for k in lengths], lengths


def _collate(items: list[dict]) -> dict:
    lengths = torch.tensor([len(it["mel"]) for it in items])
    mel = torch.zeros(len(items), int(lengths.max()), MEL)
    for i, it in enumerate(items):
        mel[i, : len(it["mel"])] = it["mel"]
    return {"mel": mel, "mel_lengths": lengths, "names": [str(i) for i in range(len(items))]}


def _config(**overrides) -> TrainConfig:
    base = dict(
        lr=3e-3,
        warmup_steps=2,
        total_steps=8,
        frames_per_batch=120,
        max_samples_per_batch=6,
        grad_accumulation_steps=2,
        log_every=2,
        eval_every=3,
        save_every=4,
        sample_every=3,
        keep_last=2,
        ema_decay=0.9,
    )
    return TrainConfig(**(base | overrides))


def _model(seed: int = 0) -> ToyFlow:
    torch.manual_seed(seed)
    return ToyFlow()


class _Tracker:
    def __init__(self) -> None:
        self.metrics: list[tuple[int | None, dict]] = []
        self.artifacts: list[tuple[Path, str | None]] = []

    def log_metrics(self, metrics, step=None) -> None:
        self.metrics.append((step, dict(metrics)))

    def log_artifact(self, path, artifact_path=None) -> None:
        self.artifacts.append((Path(path), artifact_path))


def _sample(model: nn.Module, step: int, folder: Path) -> list[Path]:
    path = folder / "noise.pt"
    torch.save(model.net[0].weight + torch.randn(1), path)  # draws: must not disturb training
    return [path]


# Schedule


def test_lr_warms_up_linearly_then_decays_linearly_to_zero() -> None:
    f = [lr_factor(s, 4, 20) for s in range(20)]
    assert f[0] == pytest.approx(1 / 5) and f[3] == pytest.approx(4 / 5)
    assert f[4] == 1.0
    assert all(a < b for a, b in itertools.pairwise(f[:5]))
    assert all(a > b for a, b in itertools.pairwise(f[4:]))
    assert f[-1] == pytest.approx(1 / 16)
    assert lr_factor(0, 0, 10) == 1.0


def test_config_rejects_warmup_past_the_end_and_unknown_keys() -> None:
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainConfig(warmup_steps=10, total_steps=10)
    with pytest.raises(ValueError, match="extra"):
        TrainConfig(lr_max=1.0)


# Batching


def test_batches_keep_the_padded_budget_and_cover_every_item_once() -> None:
    _, lengths = _dataset(200, seed=1)
    sampler = DynamicBatchSampler(lengths, 150, 8, seed=3)
    orders = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        for b in batches:
            assert len(b) <= 8
            assert len(b) * max(lengths[i] for i in b) <= 150
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(200))
        orders.append(batches)
    assert orders[0] != orders[1]  # reshuffled per epoch
    again = DynamicBatchSampler(lengths, 150, 8, seed=3)
    again.set_epoch(1)
    assert list(again) == orders[1]  # deterministic
    again.set_epoch(1, start=3)
    assert list(again) == orders[1][3:]


def test_ranks_take_alternate_batches_padded_to_the_same_count() -> None:
    lengths = [10] * 50  # 5 batches of 10: rank 1 gets one repeated batch
    ranks = [DynamicBatchSampler(lengths, 100, 10, seed=0, rank=r, world_size=2) for r in (0, 1)]
    got = [list(r) for r in ranks]
    assert len(got[0]) == len(got[1]) == 3 == len(ranks[0])
    covered = {i for batches in got for b in batches for i in b}
    assert covered == set(range(50))


def test_an_item_over_the_budget_is_an_error() -> None:
    with pytest.raises(ValueError, match="frames_per_batch"):
        pack_by_frames([10, 500], 100, 4)


# EMA


def test_ema_follows_the_warmup_decay_and_swaps_weights_back() -> None:
    model = _model()
    ema = EMA(model, decay=0.99)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(10**6) == 0.99
    assert "frozen.weight" not in ema.shadow
    start = {k: v.clone() for k, v in ema.shadow.items()}
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(1.0)
    ema.update(model)
    ema.update(model)
    # two updates: d0 = 0.1 then d1 = 2/11 -> shadow = start + (1 - d0 * d1) * 1
    expected = 1 - 0.1 * 2 / 11
    for name, s in ema.shadow.items():
        assert torch.allclose(s - start[name], torch.full_like(s, expected), atol=1e-6)
    trained = model.net[0].weight.detach().clone()
    with ema.applied_to(model):
        assert torch.equal(model.net[0].weight, ema.shadow["net.0.weight"])
    assert torch.equal(model.net[0].weight, trained)
    full = ema.model_state_dict(model)
    assert torch.equal(full["frozen.weight"], model.frozen.weight)


# Trainer


def _fit(out: Path, model: nn.Module, cfg: TrainConfig, **kwargs):
    data, lengths = _dataset(24, seed=5)
    val, val_lengths = _dataset(7, seed=6)
    trainer = Trainer(
        model, cfg, out, tracker=kwargs.pop("tracker", None), sample_fn=_sample, device="cpu"
    )
    return trainer.fit(data, _collate, lengths, val, val_lengths, **kwargs)


def test_resume_from_a_checkpoint_equals_the_run_that_never_stopped(tmp_path: Path) -> None:
    # 5 batches an epoch, 2 per update: update 4 stops mid-epoch 1, 8 ends in epoch 3.
    cfg = _config()
    straight = _model()
    result = _fit(tmp_path / "a", straight, cfg)
    assert result.step == 8
    half = _fit(tmp_path / "b", _model(), cfg, stop_at=4)
    assert half.step == 4
    resumed = _model(seed=123)  # different init: the checkpoint must overwrite it
    result_b = _fit(tmp_path / "b", resumed, cfg, resume=True)
    assert result_b.step == 8
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    ema_a = load_file(result.checkpoint / EMA_FILE)
    ema_b = load_file(result_b.checkpoint / EMA_FILE)
    assert ema_a.keys() == ema_b.keys()
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    assert result.val_loss is not None and result.val_loss == result_b.val_loss
    # The run's history carries across --resume: two parts, and the first part's loop
    # time up to its checkpoint is added to the second's.
    assert (result.parts, half.parts, result_b.parts) == (1, 1, 2)
    assert result.total_s == result.elapsed_s
    first_part = torch.load(half.checkpoint / STATE_FILE, weights_only=True)
    assert first_part["parts"] == 1 and 0 < first_part["train_seconds"] <= half.elapsed_s
    assert result_b.total_s == pytest.approx(first_part["train_seconds"] + result_b.elapsed_s)
    last_part = torch.load(result_b.checkpoint / STATE_FILE, weights_only=True)
    assert last_part["parts"] == 2 and last_part["train_seconds"] >= first_part["train_seconds"]


def test_checkpoints_are_safetensors_pruned_and_loadable(tmp_path: Path) -> None:
    model, tracker = _model(), _Tracker()
    result = _fit(tmp_path, model, _config(save_every=2), tracker=tracker)
    root = tmp_path / "checkpoints"
    assert [p.name for p in list_checkpoints(root)] == ["step_00000006", "step_00000008"]
    assert latest_checkpoint(root) == result.checkpoint
    with safe_open(str(result.checkpoint / MODEL_FILE), framework="pt") as f:
        assert set(f.keys()) == set(model.state_dict())
        assert f.metadata()["step"] == "8"
    state = torch.load(result.checkpoint / STATE_FILE, weights_only=True)
    assert state["step"] == 8 and len(state["rng"]) == 1
    fresh = load_weights(result.checkpoint, _model(seed=9))
    assert torch.equal(fresh.frozen.weight, model.frozen.weight)
    assert not torch.equal(fresh.net[0].weight, model.net[0].weight)  # the EMA, not the model
    logged = {k for _, m in tracker.metrics for k in m}
    expected = {"train/loss", "train/mse", "train/lr", "train/grad_norm", "train/frames_per_s"}
    assert expected | {"val/loss", "val/mse"} <= logged
    assert [step for step, m in tracker.metrics if "train/loss" in m] == [2, 4, 6, 8]
    assert [a.name for a, _ in tracker.artifacts] == ["noise.pt", "noise.pt"]
    assert tracker.artifacts[0][1] == "samples/step_00000003"


def test_max_minutes_fails_the_run_after_a_checkpoint_and_resume_finishes_it(
    tmp_path: Path,
) -> None:
    """The limit is a safety net: it raises (naming the setting) instead of returning a
    model with fewer updates, and the checkpoint it leaves lets --resume finish the run
    to the same weights as an unlimited one."""
    with pytest.raises(
        StageTimeLimitError, match=r"max_minutes safety limit .* after 1 of 8 updates"
    ):
        _fit(tmp_path / "limited", _model(), _config(max_minutes=1e-9))
    checkpoint = tmp_path / "limited" / "checkpoints" / "step_00000001"
    assert (checkpoint / MODEL_FILE).is_file()
    resumed, straight = _model(), _model()
    _fit(tmp_path / "limited", resumed, _config(), resume=True)
    _fit(tmp_path / "straight", straight, _config())
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name


def test_evaluation_and_sampling_leave_the_training_stream_unchanged(tmp_path: Path) -> None:
    quiet, busy = _model(), _model()
    _fit(tmp_path / "q", quiet, _config(total_steps=4, eval_every=0, sample_every=0))
    _fit(tmp_path / "b", busy, _config(total_steps=4, eval_every=1, sample_every=1))
    for name, value in quiet.state_dict().items():
        assert torch.equal(value, busy.state_dict()[name]), name
