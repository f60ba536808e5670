"""The one base of every configuration section: pydantic only, so any settings module
(``dubops.speech.settings``, ``dubops.pipelines.settings``, ...) can import it cheaply
and without a cycle (``dubops.config`` loads its models lazily).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section: unknown keys are a typo, not a wish, so they are rejected
    with the field's name."""

    model_config = ConfigDict(extra="forbid")


class CheckedSection(Section):
    """A :class:`Section` that also validates attribute assignment.

    The top-level sections (``dubops.config.models``), the reasoner's
    (``dubops.reasoning.settings``) and the speech trainer's ``TrainConfig`` have always
    done so; the other sections have not, and code assigns to some of them (the dubbing
    generator sets ``speech.sampler.nfe`` on a copy). Checking those too would change
    behaviour, so the difference stays explicit here rather than in local bases.
    """

    model_config = ConfigDict(validate_assignment=True)
