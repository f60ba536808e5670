"""Run under ``torch.distributed.run``: the real Trainer on a toy model, CPU gloo.

Each rank starts from a different init (DDP must broadcast rank 0's), trains a
few updates, writes its final weights to ``<out>/final_rank<r>.safetensors`` and
records what it logged and saved in ``<out>/calls_rank<r>.json``, so the test
can check that the ranks agree and that only rank 0 wrote.

Usage: python -m torch.distributed.run --nproc_per_node 2 ddp_train_script.py OUT
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

import dubops.speech.trainer as trainer_module
from dubops.speech.train_config import TrainConfig
from dubops.speech.trainer import Trainer

MEL = 8


class ToyFlow(nn.Module):
    """A per-frame velocity predictor with flow-matching noise and dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(MEL + 1, 16), nn.GELU(), nn.Dropout(0.2), nn.Linear(16, MEL)
        )

    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        mel, lengths = batch["mel"], batch["mel_lengths"]  # (b, n, m), (b,)
        x0 = torch.randn_like(mel)
        t = torch.rand(mel.shape[0], 1, 1, device=mel.device).expand(-1, mel.shape[1], 1)
        pred = self.net(torch.cat([(1 - t) * x0 + t * mel, t], dim=-1))
        mask = torch.arange(mel.shape[1], device=mel.device)[None] < lengths[:, None]
        loss = ((pred - (mel - x0)) ** 2).mean(-1)[mask].mean()
        return loss, {"mse": float(loss.detach())}


def collate(items: list[dict]) -> dict:
    lengths = torch.tensor([len(it["mel"]) for it in items])
    mel = torch.zeros(len(items), int(lengths.max()), MEL)
    for i, it in enumerate(items):
        mel[i, : len(it["mel"])] = it["mel"]
    return {"mel": mel, "mel_lengths": lengths}


class RecordingTracker:
    def __init__(self) -> None:
        self.metrics = 0

    def log_metrics(self, metrics, step=None) -> None:
        self.metrics += 1

    def log_artifact(self, path, artifact_path=None) -> None:
        pass


def main(out: Path) -> None:
    rank = int(os.environ["RANK"])
    saves: list[int] = []
    real_save = trainer_module.save_checkpoint

    def recording_save(root, step, *args, **kwargs):
        saves.append(step)
        return real_save(root, step, *args, **kwargs)

    trainer_module.save_checkpoint = recording_save
    g = torch.Generator().manual_seed(7)  # the same data on every rank
    lengths = torch.randint(5, 40, (30,), generator=g).tolist()
    data = [{"mel": torch.randn(k, MEL, generator=g)} for k in lengths]
    torch.manual_seed(100 + rank)  # a different init per rank
    model = ToyFlow()
    config = TrainConfig(
        lr=3e-3,
        warmup_steps=1,
        total_steps=4,
        frames_per_batch=120,
        max_samples_per_batch=6,
        log_every=2,
        eval_every=2,
        save_every=2,
        sample_every=0,
        keep_last=5,
        ema_decay=0.9,
    )
    tracker = RecordingTracker()
    result = Trainer(model, config, out, tracker=tracker, device="cpu").fit(
        data, collate, lengths, val_dataset=data[:5], val_lengths=lengths[:5]
    )
    save_file(model.state_dict(), out / f"final_rank{rank}.safetensors")
    calls = {"saves": saves, "metrics": tracker.metrics, "step": result.step}
    (out / f"calls_rank{rank}.json").write_text(json.dumps(calls))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
