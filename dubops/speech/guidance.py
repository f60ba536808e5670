"""Multi-condition classifier-free guidance of DeepDubber 2.2 (InstructPix2Pix-style).

With video ``V``, conclusion ``C`` and script ``S`` (the script's branch also
drops the prompt audio, as F5's unconditional branch does), four velocities are
evaluated in one batched pass and composed as nested differences:

    v = v(∅,∅,∅) + s_V [v(V,∅,∅) - v(∅,∅,∅)]
                 + s_C [v(V,C,∅) - v(V,∅,∅)]
                 + s_S [v(V,C,S) - v(V,C,∅)]

(Brooks et al., InstructPix2Pix, eq. 3, extended to three conditions in the
order video -> conclusion -> script). With all scales 1 this is ``v(V,C,S)``.
"""

from __future__ import annotations

import torch

from dubops.speech.cfm import Guidance
from dubops.speech.settings import GuidanceScales

# (keep video, keep conclusion, drop audio, drop text) per stacked branch.
BRANCHES: tuple[tuple[bool, bool, bool, bool], ...] = (
    (True, True, False, False),  # V, C, S
    (True, True, True, True),  # V, C, -
    (True, False, True, True),  # V, -, -
    (False, False, True, True),  # -, -, -
)


def multi_condition(scales: GuidanceScales) -> tuple[Guidance, list[tuple[bool, bool]]]:
    """The :class:`Guidance` over :data:`BRANCHES` and each branch's (keep video, keep concl.).

    With every scale at 1 the composition is the conditional velocity itself, so
    only that branch is evaluated.
    """
    if scales.visual == scales.conclusion == scales.script == 1.0:
        return Guidance([(False, False)], lambda v: v[0]), [(True, True)]

    def combine(v: list[torch.Tensor]) -> torch.Tensor:
        full, no_script, video_only, none = v
        return (
            none
            + scales.visual * (video_only - none)
            + scales.conclusion * (no_script - video_only)
            + scales.script * (full - no_script)
        )

    guidance = Guidance([(a, t) for _, _, a, t in BRANCHES], combine)
    return guidance, [(v, c) for v, c, _, _ in BRANCHES]
