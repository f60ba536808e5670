"""Trainer callbacks shared by the SFT and MPO stages: time limit, MLflow, validation.

They keep TRL's trainers unchanged and add what our stages promise: the
``max_minutes`` safety limit (a checkpoint, then the stage fails; ``--resume``
continues it),
every logged scalar in MLflow through :class:`dubops.tracking.Tracker`, and
after each epoch the validation clips answered greedily and scored with
``dubops eval``'s reasoning metrics (format validity, accuracies), with a few
answers saved as a text artifact.
"""

from __future__ import annotations

import logging
from typing import Any

from transformers import TrainerCallback

from dubops.evaluation.reasoning import score_reasoning
from dubops.reasoning.inference import Reasoner
from dubops.reasoning.settings import ReasonerConfig
from dubops.reasoning.training_data import ClipSet
from dubops.safety_limit import SafetyLimit

logger = logging.getLogger(__name__)


class TimeLimit(TrainerCallback):
    """The stage's safety limit: past it, save a checkpoint and stop, then :meth:`enforce`.

    Raising inside the callback would lose the checkpoint; the trainer stops first and
    the stage raises once ``train()`` has returned.
    """

    def __init__(self, limit: SafetyLimit) -> None:
        self.limit = limit
        self.stopped_at: tuple[int, int] | None = None  # (update, of updates)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step < state.max_steps and self.limit.expired():
            self.stopped_at = (state.global_step, state.max_steps)
            control.should_save = True
            control.should_training_stop = True
        return control

    def enforce(self) -> None:
        """Raise :class:`StageTimeLimitError` when the limit stopped the run."""
        if self.stopped_at is not None:
            self.limit.check(*self.stopped_at)


class TrackMetrics(TrainerCallback):
    """Every ``logs`` dict the trainer emits, as MLflow metrics at its global step."""

    def __init__(self, tracker: Any, prefix: str) -> None:
        self.tracker = tracker
        self.prefix = prefix

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.tracker is not None and logs:
            scalars = {
                f"{self.prefix}/{k.replace('/', '_')}": v
                for k, v in logs.items()
                if isinstance(v, int | float)
            }
            self.tracker.log_metrics(scalars, step=state.global_step)


class ValidateEachEpoch(TrainerCallback):
    """Greedy answers on the validation clips, scored; the scores go to MLflow."""

    def __init__(
        self, processor: Any, config: ReasonerConfig, val: ClipSet, tracker: Any, prefix: str
    ) -> None:
        self.processor = processor
        self.config = config
        self.val = val
        self.tracker = tracker
        self.prefix = prefix
        self.last: dict[str, Any] = {}

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if model is None or len(self.val) == 0:
            return
        self.last = validate(model, self.processor, self.config, self.val)
        epoch = round(state.epoch or 0)
        logger.info("%s epoch %d: %s", self.prefix, epoch, _brief(self.last))
        if self.tracker is not None:
            flat = {f"{self.prefix}/val_{k}": v for k, v in self.last.items() if _scalar(v)}
            self.tracker.log_metrics(flat, step=state.global_step)
            self.tracker.log_text(
                self.last.pop("samples", ""), f"samples/{self.prefix}_epoch{epoch:03d}.txt"
            )
        model.train()


def validate(model: Any, processor: Any, config: ReasonerConfig, val: ClipSet) -> dict[str, Any]:
    """Scores of greedy answers on ``val`` plus ``samples``: three answers as text."""
    was_training = model.training
    model.eval()
    reasoner = Reasoner(model, processor, config)
    results = reasoner.reason(list(val.rows.video_path), list(val.rows.script), images=val.images)
    if was_training:
        model.train()
    outputs = {cid: r.text for cid, r in zip(val.rows.clip_id, results, strict=True)}
    scores = score_reasoning(outputs, val.rows)
    scores["tokens_per_answer"] = sum(r.new_tokens for r in results) / len(results)
    scores["samples"] = "\n\n".join(f"[{cid}] {text}" for cid, text in list(outputs.items())[:3])
    return scores


def _scalar(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _brief(scores: dict[str, Any]) -> str:
    keys = ("format_validity", "scene_type_accuracy", "gender_accuracy", "emotion_accuracy")
    return ", ".join(f"{k} {scores[k]:.3f}" for k in keys if k in scores)
