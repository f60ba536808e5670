"""Duration refinement: the predictor trained on alone, after the ControlNet stage.

In the joint stage every update pays for a DiT pass, so the small duration
predictor sees few updates (the tiny preset: 900), and its timing decides lip
sync: with ground-truth durations the generated speech lines up with the lips
(offset 0), with the joint stage's predictions short clips drift by up to half a
second. Here the frame encoder and the conclusion embedding stay frozen, their
outputs are computed once per clip, and only the predictor keeps training on the
duration loss: thousands of updates cost minutes on a CPU. The guidance dropout
of the joint stage is kept (video and conclusion each dropped 5 %), every input
goes through :meth:`DubbingModel.predict_log_durations` as at inference, and the
weights with the lowest validation *onset error* are kept (the mean distance, in
video frames, between where each spoken phoneme starts and where it should).
"""

from __future__ import annotations

import copy
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dubops.data.datasets import pad_stack
from dubops.speech.duration import duration_loss, predict_frames
from dubops.speech.text import PAUSE

if TYPE_CHECKING:
    from dubops.speech.data import ClipDataset
    from dubops.speech.dubbing_model import DubbingModel
    from dubops.speech.settings import DurationRefineConfig

log = logging.getLogger(__name__)


@dataclass
class _Clip:
    """One clip's predictor inputs with the frozen encoders already applied."""

    phonemes: torch.Tensor  # (p,) corpus ids
    durations: torch.Tensor  # (p,) frames
    video: torch.Tensor  # (f, dv) frame-encoder features
    tokens: torch.Tensor  # (4, dv) conclusion tokens (kept)


@dataclass
class RefineResult:
    """What the refinement did (logged, and written to ``stage.json``)."""

    steps: int
    best_step: int
    onset_error_before: float  # validation, video frames
    onset_error_after: float
    minutes: float


def onset_error(
    predicted: torch.Tensor, target: torch.Tensor, spoken: torch.Tensor, mel_per_frame: float
) -> float:
    """Mean |start of each spoken phoneme, predicted - true|, in video frames."""
    start_p = torch.cumsum(predicted, 0) - predicted
    start_t = torch.cumsum(target, 0) - target
    return float((start_p[spoken] - start_t[spoken]).abs().float().mean()) / mel_per_frame


def _encode(model: DubbingModel, dataset: ClipDataset) -> list[_Clip]:
    """Frozen frame-encoder and conclusion outputs, once per clip."""
    clips = []
    device = next(model.duration.parameters()).device
    keep = torch.tensor([True], device=device)
    with torch.no_grad():
        for i in range(len(dataset)):
            item = dataset[i]
            labels = {
                k: torch.as_tensor(v).reshape(1).to(device) for k, v in item["labels"].items()
            }
            clips.append(
                _Clip(
                    item["phonemes"].to(device),
                    item["durations"].to(device),
                    model.visual(item["frames"][None].to(device))[0],
                    model.conclusion(labels, keep)[0],
                )
            )
    return clips


def _log_durations(
    model: DubbingModel,
    clips: Sequence[_Clip],
    keep_visual: torch.Tensor,
    keep_conclusion: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (predicted log durations (b, p), target frames (b, p), phoneme mask (b, p))."""
    phonemes, mask = pad_stack([c.phonemes for c in clips])
    durations, _ = pad_stack([c.durations for c in clips])
    video, frame_mask = pad_stack([c.video for c in clips])
    null = model.conclusion.null  # a dropped conclusion reads the learned nulls
    tokens = torch.stack(
        [c.tokens if k else null for c, k in zip(clips, keep_conclusion, strict=True)]
    )
    frame_lengths = frame_mask.sum(1)
    log_dur = model.predict_log_durations(
        phonemes, mask.bool(), video, frame_lengths, tokens, keep_visual.to(video.device)
    )
    return log_dur, durations, mask.bool()


def validation_onset_error(
    model: DubbingModel, clips: Sequence[_Clip], pause_id: int, mel_per_frame: float
) -> float:
    """Onset error over clips, durations fitted to each clip's true length (as inference)."""
    model.duration.eval()
    errors = []
    with torch.no_grad():
        for clip in clips:
            log_dur, _, _ = _log_durations(model, [clip], torch.tensor([True]), [True])
            pause = clip.phonemes == pause_id
            frames = predict_frames(log_dur[0], pause=pause, total_frames=int(clip.durations.sum()))
            errors.append(onset_error(frames, clip.durations, ~pause, mel_per_frame))
    return float(np.mean(errors))


def refine_durations(
    model: DubbingModel,
    train: ClipDataset,
    val: ClipDataset,
    config: DurationRefineConfig,
    drop_prob: float,
    mel_per_frame: float,
    tracker: Any = None,
    seed: int = 0,
) -> RefineResult:
    """Train ``model.duration`` alone for ``config.steps``; keep the best on val.

    Args:
        drop_prob: the joint stage's condition dropout (video, conclusion), kept.
        mel_per_frame: mel frames per video frame (24 kHz / hop 256 / 25 fps = 3.75).
    """
    from tqdm.auto import tqdm

    start = time.monotonic()
    pause_id = train.vocab.index.get(PAUSE, -1)
    train_clips, val_clips = _encode(model, train), _encode(model, val)
    predictor = model.duration
    before = best = validation_onset_error(model, val_clips, pause_id, mel_per_frame)
    best_state, best_step = copy.deepcopy(predictor.state_dict()), 0
    log.info("duration refinement: val onset error %.3f frames before", before)
    optimizer = torch.optim.AdamW(predictor.parameters(), lr=config.lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    steps = config.steps
    bar = tqdm(range(1, steps + 1), desc="durations", disable=not sys.stderr.isatty())
    for step in bar:
        if len(order) < config.batch:
            order += rng.permutation(len(train_clips)).tolist()
        batch = [train_clips[i] for i in order[: config.batch]]
        del order[: config.batch]
        keep = torch.rand(2, len(batch), generator=generator) >= drop_prob
        predictor.train()
        log_dur, target, mask = _log_durations(model, batch, keep[0], keep[1].tolist())
        loss = duration_loss(log_dur, target, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.loss.backward()
        torch.nn.utils.clip_grad_norm_(predictor.parameters(), 1.0)
        optimizer.step()
        if step % config.eval_every == 0 or step == steps:
            error = validation_onset_error(model, val_clips, pause_id, mel_per_frame)
            if tracker is not None:
                tracker.log_metrics(
                    {
                        "duration_refine/loss": float(loss.loss.detach()),
                        "duration_refine/val_onset_error_frames": error,
                    },
                    step=step,
                )
            if error < best:
                best, best_state, best_step = error, copy.deepcopy(predictor.state_dict()), step
    predictor.load_state_dict(best_state)
    predictor.eval()
    result = RefineResult(steps, best_step, before, best, (time.monotonic() - start) / 60)
    log.info(
        "duration refinement: val onset error %.3f -> %.3f frames (best at update %d of %d)",
        before,
        best,
        best_step,
        steps,
    )
    if tracker is not None:
        tracker.log_metrics({"duration_refine/best_val_onset_error_frames": best})
        tracker.log_params({f"duration_refine_{k}": v for k, v in asdict(result).items()})
    return result
