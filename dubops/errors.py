"""The project's own error types: what the CLI may show as a one-line message.

Anything else (a ``ValueError`` from a library, a ``KeyError`` from a bug) is a bug
and keeps its traceback. Existing domain errors (``ConfigError``, ``ScriptError`` …)
derive from :class:`DubOpsError` as well as from ``ValueError`` so callers that
caught ``ValueError`` keep working.
"""

from __future__ import annotations


class DubOpsError(Exception):
    """Base of every error a user can fix by changing an input, a setting or the machine."""


class InputError(DubOpsError, ValueError):
    """A command-line or request input is wrong; the message names the option and the fix."""


class StageTimeLimitError(DubOpsError, RuntimeError):
    """A training stage ran past its ``max_minutes`` safety limit.

    Budgets are updates, not minutes (a busy machine must train the same model,
    later); the limit only stops a run that is far slower than expected, and it
    fails the stage rather than hand on a weaker model.
    """

    def __init__(self, stage: str, limit_minutes: float, done: int, total: int) -> None:
        self.stage, self.limit_minutes, self.done, self.total = stage, limit_minutes, done, total
        super().__init__(
            f"{stage}: the max_minutes safety limit ({limit_minutes:g} min) ran out after "
            f"{done} of {total} updates; the stage failed instead of handing on a shorter-"
            f"trained model. Resume it (the last checkpoint is kept), or raise the limit "
            f"with --set {stage_limit_key(stage)}=<minutes> if the machine is this slow"
        )


def stage_limit_key(stage: str) -> str:
    """The config key of a stage's safety limit, for error messages."""
    return {
        "dit_pretrain": "speech.pretrain.max_minutes",
        "controlnet_tune": "speech.controlnet_training.max_minutes",
        "graph_synthesizer": "graph.training.max_minutes",
        "reasoner_sft": "reasoning.sft.max_minutes",
        "reasoner_mpo": "reasoning.mpo.max_minutes",
        "train_extractors": "emotion.max_minutes",
    }.get(stage, "pipeline.stage_minutes")


class MediaError(DubOpsError, ValueError):
    """A video or audio file that cannot be decoded (missing, corrupt, no stream)."""


class TrackingStoreError(DubOpsError):
    """The MLflow store is missing or unreachable; the message names the URI and the fix."""
