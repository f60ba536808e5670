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

    The differences telescope: a unit scale at the bottom of the chain cancels
    the branch below it (``s_V = 1`` leaves ``v(V,∅,∅) + s_C [...] + s_S [...]``),
    so only the branches the scales need are evaluated: all scales 1 is the
    conditional velocity alone; video and conclusion at 1 with the script
    guided is two branches, not four.
    """
    # Scale of the difference between branch i and branch i + 1.
    steps = (scales.script, scales.conclusion, scales.visual)
    kept = len(BRANCHES)
    while kept > 1 and steps[kept - 2] == 1.0:
        kept -= 1

    def combine(v: list[torch.Tensor]) -> torch.Tensor:
        out = v[kept - 1]
        for i in range(kept - 1):
            out = out + steps[i] * (v[i] - v[i + 1])
        return out

    branches = BRANCHES[:kept]
    guidance = Guidance([(a, t) for _, _, a, t in branches], combine)
    return guidance, [(v, c) for v, c, _, _ in branches]
