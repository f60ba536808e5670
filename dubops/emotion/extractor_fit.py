"""Train one extractor's network on cached inputs, and score it.

The loop shape of the other trainers, kept small: ``train_step`` on a shuffled
minibatch, an epoch cadence, the stage's ``max_minutes`` safety limit checked between epochs.
Inputs arrive already prepared (decoded, cropped, embedded, mel'd) once per
clip, so an epoch costs only the network.

Shapes: ``b`` batch, ``k`` emotion classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as nnf

from dubops.emotion.extractors.base import TrainedExtractor
from dubops.emotion.settings import FitSettings
from dubops.safety_limit import SafetyLimit

# Image inputs that a left-right flip leaves with the same emotion.
_FLIPPABLE = ("frames", "crops")


def _augment(tensors: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Mirror the whole batch's images half of the time (faces and rooms are symmetric)."""
    if torch.rand((), generator=gen) < 0.5:
        return {k: v.flip(-1) if k in _FLIPPABLE else v for k, v in tensors.items()}
    return tensors


def train_step(
    extractor: TrainedExtractor,
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    labels: torch.Tensor,
) -> float:
    """One optimiser step on the summed cross-entropy of every emotion head."""
    extractor.net.train()
    _, logits = extractor.net(**tensors)
    loss = sum(nnf.cross_entropy(lg, labels) for lg in logits)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(extractor.net.parameters(), 5.0)
    optimizer.step()
    return loss.item()


def predict(
    extractor: TrainedExtractor, prepared: Sequence[Any], batch_size: int = 64
) -> np.ndarray:
    """Predicted emotion index per prepared clip (the main head, eval mode)."""
    extractor.net.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(prepared), batch_size):
            _, logits = extractor.net(**extractor.collate(prepared[start : start + batch_size]))
            out.append(logits[0].argmax(-1).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=int)


def fit_extractor(
    extractor: TrainedExtractor,
    prepared: Sequence[Any],
    labels: np.ndarray,
    fit: FitSettings,
    seed: int,
    limit: SafetyLimit | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> int:
    """Train ``extractor.net`` on the prepared training clips.

    Args:
        extractor: a freshly built extractor.
        prepared: per-clip inputs from ``extractor.prepare`` (training clips only).
        labels: emotion index per clip.
        fit: epochs, learning rate, weight decay, batch size.
        seed: shuffling and augmentation seed.
        limit: the stage's safety limit; past it, training fails (never stops short).
        on_epoch: ``on_epoch(epoch, mean_loss)`` after each epoch.

    Returns:
        The number of epochs completed.
    """
    if len(prepared) == 0:
        raise ValueError("the corpus has no clips in its train split; cannot train extractors")
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(
        extractor.net.parameters(), lr=fit.lr, weight_decay=fit.weight_decay
    )
    steps_per_epoch = math.ceil(len(prepared) / fit.batch_size)
    total = fit.epochs * steps_per_epoch
    # Linear warm-up over the first epoch, then cosine decay to 5 % of the peak.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            min(1.0, (s + 1) / steps_per_epoch)
            * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s / total, 1.0))))
        ),
    )
    y = torch.as_tensor(labels, dtype=torch.long)
    epoch = 0
    for epoch in range(1, fit.epochs + 1):
        order = rng.permutation(len(prepared))
        losses = []
        for start in range(0, len(order), fit.batch_size):
            idx = order[start : start + fit.batch_size]
            if len(idx) < 2:  # BatchNorm needs two items
                continue
            tensors = _augment(extractor.collate([prepared[i] for i in idx]), gen)
            losses.append(train_step(extractor, optimizer, tensors, y[idx]))
            schedule.step()
        mean_loss = float(np.mean(losses)) if losses else float("nan")
        if on_epoch is not None:
            on_epoch(epoch, mean_loss)
        if limit is not None:
            limit.check(epoch, fit.epochs)
    return epoch
