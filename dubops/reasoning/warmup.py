"""Vision warm-up: teach a random vision tower the clip labels before any text.

LLaVA trains its projector on captions before instruction tuning because its
vision tower already sees; ours starts blind, and DESIGN.md measured what
happens then: SFT alone learns the tag template in ~100 steps and ignores the
images (scene accuracy at chance). So the tower first learns, with plain
classification heads, everything the answer needs from the images: how many
people, which one talks (none, left, middle, right), scene type, and the
voice's gender, age and emotion (gender and age only where the speaker is on
screen: a narrator's are not in the pictures). The heads are thrown away; the
tower's tokens, which the LLaVA projector reads, now carry the labels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dubops.data.schema import AGES, EMOTIONS, GENDERS, SCENE_TYPES
from dubops.safety_limit import SafetyLimit

logger = logging.getLogger(__name__)

TASKS: dict[str, int] = {
    "num_people": 4,
    "talker": 4,  # 0 = nobody, else talker_index + 1
    "scene_type": len(SCENE_TYPES),
    "gender": len(GENDERS),
    "age": len(AGES),
    "emotion": len(EMOTIONS),
}
IGNORE = -100


def clip_targets(rows: Sequence[Any]) -> dict[str, np.ndarray]:
    """Integer targets per task from manifest rows (IGNORE where not visible)."""
    targets: dict[str, list[int]] = {task: [] for task in TASKS}
    for row in rows:
        talker = row.talker_index
        talking = talker is not None and not (isinstance(talker, float) and np.isnan(talker))
        targets["num_people"].append(int(row.num_people))
        targets["talker"].append(int(talker) + 1 if talking else 0)
        targets["scene_type"].append(SCENE_TYPES.index(row.scene_type))
        targets["gender"].append(GENDERS.index(row.gender) if talking else IGNORE)
        targets["age"].append(AGES.index(row.age) if talking else IGNORE)
        targets["emotion"].append(EMOTIONS.index(row.emotion))
    return {task: np.asarray(values, dtype=np.int64) for task, values in targets.items()}


def _heads(hidden: int, tokens: int) -> Any:
    import torch
    from torch import nn

    class Heads(nn.Module):
        """Per-token squeeze then one linear layer per task: keeps *where* things are."""

        def __init__(self) -> None:
            super().__init__()
            self.squeeze = nn.Linear(hidden, 16)
            self.out = nn.ModuleDict({t: nn.Linear(16 * tokens, n) for t, n in TASKS.items()})

        def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
            flat = nn.functional.gelu(self.squeeze(features)).flatten(1)
            return {task: head(flat) for task, head in self.out.items()}

    return Heads()


def tower_tokens(tower: Any, pixel_values: Any, images_per_clip: int) -> Any:
    """``(clips, images x patches, hidden)``: the last layer without the class token.

    The same tokens LLaVA's projector reads with ``vision_feature_layer=-1`` and
    the "default" selection strategy.
    """
    hidden = tower(pixel_values, output_hidden_states=True).hidden_states[-1][:, 1:]
    return hidden.reshape(-1, images_per_clip * hidden.shape[1], hidden.shape[2])


def warm_up_vision(
    tower: Any,
    pixel_values: Any,  # (clips x images, 3, s, s)
    targets: dict[str, np.ndarray],
    images_per_clip: int,
    epochs: int,
    lr: float,
    batch_size: int,
    val: tuple[Any, dict[str, np.ndarray]] | None = None,
    seed: int = 0,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    limit: SafetyLimit | None = None,
) -> dict[str, float]:
    """Train ``tower`` (in place) with classification heads; return the last metrics.

    Metrics: training loss, and per-task accuracy on ``val`` when given.
    """
    import torch

    torch.manual_seed(seed)
    clips = len(pixel_values) // images_per_clip
    with torch.no_grad():
        probe = tower_tokens(tower, pixel_values[:images_per_clip], images_per_clip)
    heads = _heads(probe.shape[-1], probe.shape[1])
    params = [*tower.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps = max(1, epochs * -(-clips // batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.1)
    pixels = pixel_values.reshape(clips, images_per_clip, *pixel_values.shape[1:])
    target_t = {t: torch.from_numpy(v) for t, v in targets.items()}
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=IGNORE)
    metrics: dict[str, float] = {}
    from tqdm.auto import tqdm

    for epoch in tqdm(range(epochs), desc="vision warm-up", unit="epoch"):
        tower.train()
        order = torch.randperm(clips)
        total = 0.0
        for start in range(0, clips, batch_size):
            idx = order[start : start + batch_size]
            feats = tower_tokens(tower, pixels[idx].flatten(0, 1), images_per_clip)
            logits = heads(feats)
            loss = sum(loss_fn(logits[t], target_t[t][idx]) for t in TASKS)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            total += float(loss) * len(idx)
        metrics = {"warmup_loss": total / clips}
        if val is not None:
            metrics |= _accuracy(tower, heads, val[0], val[1], images_per_clip)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        if limit is not None:
            limit.check(epoch + 1, epochs)
    tower.eval()
    return metrics


def _accuracy(
    tower: Any, heads: Any, pixel_values: Any, targets: dict[str, np.ndarray], per_clip: int
) -> dict[str, float]:
    import torch

    tower.eval()
    with torch.no_grad():
        logits = heads(tower_tokens(tower, pixel_values, per_clip))
    out = {}
    for task, values in targets.items():
        keep = values != IGNORE
        if keep.any():
            pred = logits[task].argmax(-1).numpy()
            out[f"warmup_val_{task}_acc"] = float((pred[keep] == values[keep]).mean())
    return out
