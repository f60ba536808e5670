"""Pitch refinement: the pitch head trained on alone, on frozen conditions, after a stage.

Inside a stage every update pays for a DiT pass, and the head shares those few
updates (600 in the tiny graph stage) with everything else: it then reproduced
the emotions' pitch and loudness only roughly (EMO-ACC 0.24-0.34). The
conditions already carry them: a fresh head fitted on them alone for 500
updates matched the ground truth's per-emotion log-F0 and loudness on the val
split (sadness -0.18 against -0.25, surprise +0.36 against +0.46). So, as
:mod:`dubops.speech.duration_refine` does for durations, each clip's fully
conditioned sequence (video, conclusion, and footage in a graph model) is
computed once, and the head alone trains on it; the weights with the lowest
validation loss are kept.
"""

from __future__ import annotations

import copy
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from dubops.speech.pitch import frame_phonemes, loudness, pitch_loss

if TYPE_CHECKING:
    from dubops.speech.data import ClipDataset
    from dubops.speech.dubbing_model import DubbingModel
    from dubops.speech.settings import PitchConfig

log = logging.getLogger(__name__)

FootageFn = Callable[[list[str]], dict[str, torch.Tensor]]


@dataclass
class PitchRefineResult:
    """What the refinement did (logged, and written to ``stage.json``)."""

    steps: int
    best_step: int
    val_loss_before: float
    val_loss_after: float
    minutes: float
    contour_spread: float  # val targets' log-F0 SD over the served contour's


def _encode(model: DubbingModel, data: ClipDataset, footage: FootageFn | None) -> list[dict]:
    """Each clip's head inputs and targets, the conditions computed once (no dropout)."""
    from dubops.speech.data import collate_utterances

    clips = []
    for start in range(0, len(data), 8):
        items = [data[i] for i in range(start, min(len(data), start + 8))]
        batch = collate_utterances(items, model.config.text_mode)
        n = batch["mel"].shape[1]
        keep = torch.ones(len(items), dtype=torch.bool)
        feet = None if footage is None else footage([it["clip_id"] for it in items])
        with torch.no_grad():
            condition, _, _ = model.condition(
                batch["frames"],
                batch["frame_lengths"],
                batch["labels"],
                batch["mel_lengths"],
                n,
                keep,
                keep,
                footage=feet,
            )
        phonemes = frame_phonemes(batch["phonemes"], batch["durations"], n)
        level = loudness(batch["mel"])
        for i in range(len(items)):
            frames = int(batch["mel_lengths"][i])
            clips.append(
                {
                    "condition": condition[i, :frames],
                    "phonemes": phonemes[i, :frames],
                    "f0": batch["f0"][i, :frames],
                    "prompt_logf0": batch["prompt_logf0"][i],
                    "level": level[i, :frames],
                    "prompt_level": batch["prompt_level"][i],
                }
            )
    return clips


def _loss(head: torch.nn.Module, clips: list[dict]) -> torch.Tensor:
    def pad(key: str) -> torch.Tensor:
        return torch.nn.utils.rnn.pad_sequence([c[key] for c in clips], batch_first=True)

    lengths = torch.tensor([len(c["condition"]) for c in clips])
    mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
    prediction = head(pad("condition"), pad("phonemes"))
    return pitch_loss(
        prediction,
        pad("f0"),
        torch.stack([c["prompt_logf0"] for c in clips]),
        pad("level"),
        torch.stack([c["prompt_level"] for c in clips]),
        mask,
    )


def contour_spread(head: torch.nn.Module, clips: list[dict], config: PitchConfig) -> float:
    """The targets' voiced log-F0 spread over the served contour's, on the val clips.

    Why: a head fitted by squared error predicts the mean of the contours a clip
    could have, flatter than any one of them. The contour is formed as served
    (voicing threshold, smoothing, no scale) and each clip's log-F0 SD is taken
    over the frames both it and the target voice; the ratio of the mean SDs is
    the global-variance factor ``speech.pitch.contour_scale`` restores. Clips
    with fewer than 20 such frames are left out; with none left, 1.
    """
    from dubops.speech.pitch import contour

    target_sd, served_sd = [], []
    with torch.no_grad():
        for clip in clips:
            delta, voiced, _ = head(clip["condition"][None], clip["phonemes"][None])
            served = contour(
                delta[0],
                voiced[0],
                float(clip["prompt_logf0"]),
                config.voicing_threshold,
                config.smooth_frames,
            )
            target = clip["f0"].cpu().numpy()
            both = (served > 0) & (target > 0)
            if both.sum() >= 20:
                target_sd.append(np.log(target[both]).std())
                served_sd.append(np.log(served[both]).std())
    if not served_sd or float(np.mean(served_sd)) <= 0:
        return 1.0
    return float(np.mean(target_sd) / np.mean(served_sd))


def measure_contour_spread(
    model: DubbingModel, val: ClipDataset, config: PitchConfig, footage: FootageFn | None = None
) -> float:
    """:func:`contour_spread` of ``model.pitch`` on ``val``, without refining the head."""
    was_training = model.training
    model.eval()
    spread = contour_spread(model.pitch, _encode(model, val, footage), config)
    model.train(was_training)
    return spread


def refine_pitch(
    model: DubbingModel,
    train: ClipDataset,
    val: ClipDataset,
    config: PitchConfig,
    footage: FootageFn | None = None,
    seed: int = 0,
) -> PitchRefineResult:
    """Train ``model.pitch`` alone for ``config.refine_steps``; keep the best on val."""
    from tqdm.auto import tqdm

    start = time.monotonic()
    was_training = model.training
    model.eval()
    train_clips, val_clips = _encode(model, train, footage), _encode(model, val, footage)
    head = model.pitch
    with torch.no_grad():
        before = best = float(_loss(head, val_clips))
    best_state, best_step = copy.deepcopy(head.state_dict()), 0
    head.requires_grad_(True)  # trained alone here, even where the stage held it (graph.frozen)
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.refine_lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    steps = config.refine_steps
    head.train()
    bar = tqdm(range(1, steps + 1), desc="pitch", disable=not sys.stderr.isatty())
    for step in bar:
        picked = rng.choice(len(train_clips), size=min(16, len(train_clips)), replace=False)
        loss = _loss(head, [train_clips[i] for i in picked])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % config.refine_eval_every == 0 or step == steps:
            head.eval()
            with torch.no_grad():
                current = float(_loss(head, val_clips))
            head.train()
            if current < best:
                best, best_step, best_state = current, step, copy.deepcopy(head.state_dict())
    head.load_state_dict(best_state)
    head.eval()
    spread = contour_spread(head, val_clips, config)
    model.train(was_training)
    minutes = (time.monotonic() - start) / 60
    result = PitchRefineResult(steps, best_step, before, best, minutes, spread)
    log.info(
        "pitch refinement: val loss %.3f -> %.3f (best update %d); val contour spread x%.2f",
        before,
        best,
        best_step,
        spread,
    )
    return result
