"""``max_minutes`` is a safety limit: it fails a stage short of its budget, never shortens it."""

from __future__ import annotations

import pytest

from dubops.errors import StageTimeLimitError
from dubops.safety_limit import SafetyLimit


def test_no_limit_and_a_finished_stage_never_raise() -> None:
    SafetyLimit("reasoner_sft", None, started=0.0).check(1, 10)
    SafetyLimit("reasoner_sft", 1e-9, started=0.0).check(10, 10)


def test_an_expired_limit_names_the_stage_its_progress_and_the_setting() -> None:
    limit = SafetyLimit("train_extractors", 1e-9, started=0.0)
    with pytest.raises(StageTimeLimitError) as caught:
        limit.check(3, 30)
    message = str(caught.value)
    assert "train_extractors" in message and "after 3 of 30 updates" in message
    assert "--set emotion.max_minutes=" in message


def test_the_trainer_callback_saves_stops_and_then_fails_the_stage() -> None:
    """TRL's trainers get a stop with a checkpoint (so --resume continues); the stage then
    raises once ``train()`` has returned, instead of shipping the shorter run."""
    from transformers import TrainerControl, TrainerState

    from dubops.reasoning.callbacks import TimeLimit

    state, control = TrainerState(), TrainerControl()
    state.global_step, state.max_steps = 5, 40
    stopper = TimeLimit(SafetyLimit("reasoner_sft", 1e-9, started=0.0))
    stopper.on_step_end(None, state, control)
    assert control.should_save and control.should_training_stop
    with pytest.raises(StageTimeLimitError, match=r"after 5 of 40 updates.*reasoning\.sft"):
        stopper.enforce()

    relaxed = TimeLimit(SafetyLimit("reasoner_sft", 60.0))
    control = TrainerControl()
    relaxed.on_step_end(None, state, control)
    assert not control.should_training_stop
    relaxed.enforce()
