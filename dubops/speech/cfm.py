"""Conditional flow matching: the infilling objective and the ODE sampler.

Training (F5-TTS / Voicebox): a random 70-100 % span of each mel is hidden from
the prompt channel and the network predicts the straight-line velocity
``x1 - x0`` there; the prompt audio is dropped 30 % of the time and prompt and
text together 20 %, which is what classifier-free guidance needs at inference.

Sampling integrates ``dx/dt = v(x, t)`` from noise at t=0 to mel at t=1 on a
fixed grid (Euler or midpoint), optionally sway-warped towards small t and with
F5's empirically pruned grids for low NFE. The step-independent inputs are
prepared once and the guidance branches share one batched pass per step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import nn

from dubops.cancellation import raise_if_stopped
from dubops.speech.dit import Control, DiT
from dubops.speech.frozen_compile import frozen_compile, modules_in, weights_unchanged
from dubops.speech.settings import FlowMatchingConfig, SamplerConfig

logger = logging.getLogger(__name__)

# F5's pruned grids (in 1/32 units) for low step counts.
_EPSS_GRIDS = {
    5: [0, 2, 4, 8, 16, 32],
    6: [0, 2, 4, 6, 8, 16, 32],
    7: [0, 2, 4, 6, 8, 16, 24, 32],
    10: [0, 2, 4, 6, 8, 12, 16, 20, 24, 28, 32],
    12: [0, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32],
    16: [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32],
}


def time_grid(
    nfe: int, sway_coef: float | None = None, use_epss: bool = True, dtype=torch.float32
) -> torch.Tensor:
    """``(nfe + 1,)`` times from 0 to 1, pruned for low NFE and sway-warped."""
    if use_epss and nfe in _EPSS_GRIDS:
        t = torch.tensor(_EPSS_GRIDS[nfe], dtype=dtype) / 32
    else:
        t = torch.linspace(0, 1, nfe + 1, dtype=dtype)
    if sway_coef is not None:
        t = t + sway_coef * (torch.cos(math.pi / 2 * t) - 1 + t)
    return t


def lengths_to_mask(lengths: torch.Tensor, length: int | None = None) -> torch.Tensor:
    n = int(lengths.max()) if length is None else length
    return torch.arange(n, device=lengths.device)[None, :] < lengths[:, None]


def random_span_mask(
    lengths: torch.Tensor, low: float, high: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One contiguous span per sample covering a fraction in [low, high] of it."""
    b = lengths.shape[0]
    frac = torch.rand(b, generator=generator, device=lengths.device) * (high - low) + low
    span = (frac * lengths).long()
    start = ((lengths - span) * torch.rand(b, generator=generator, device=lengths.device)).long()
    pos = torch.arange(int(lengths.max()), device=lengths.device)[None, :]
    return (pos >= start.clamp(min=0)[:, None]) & (pos < (start + span)[:, None])


def solve_ode(
    velocity: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor],
    y0: torch.Tensor,
    grid: torch.Tensor,
    method: str = "euler",
) -> torch.Tensor:
    """Fixed-grid Euler or midpoint; ``velocity(call_index, t, y)``."""
    y = y0
    calls = 0
    for i in range(len(grid) - 1):
        raise_if_stopped()  # a caller that stopped waiting stops the sampler within one step
        t0, t1 = grid[i], grid[i + 1]
        dt = t1 - t0
        if method == "euler":
            y = y + dt * velocity(calls, t0, y)
            calls += 1
        else:
            half = 0.5 * dt
            f0 = velocity(calls, t0, y)
            y = y + dt * velocity(calls + 1, t0 + half, y + f0 * half)
            calls += 2
    return y


@dataclass
class Guidance:
    """Condition variants to evaluate together and how to combine their velocities.

    ``variants`` are ``(drop_audio, drop_text)`` pairs for :meth:`DiT.prepare`;
    ``combine`` receives the per-variant velocities in that order.
    """

    variants: list[tuple[bool, bool]]
    combine: Callable[[list[torch.Tensor]], torch.Tensor]

    @staticmethod
    def standard(cfg_strength: float) -> Guidance:
        """F5's CFG: conditional vs. prompt-and-text-dropped."""
        if cfg_strength < 1e-5:
            return Guidance([(False, False)], lambda v: v[0])
        return Guidance(
            [(False, False), (True, True)], lambda v: v[0] + (v[0] - v[1]) * cfg_strength
        )


class FlowMatching(nn.Module):
    """Owns the backbone, the training objective and the sampler."""

    def __init__(
        self,
        backbone: DiT,
        config: FlowMatchingConfig | None = None,
        notext_id: int | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.config = config or FlowMatchingConfig()
        # Aligned text mode: frames the model sees as prompt get this id instead of
        # their phoneme, so a user's prompt needs no alignment (DESIGN.md).
        self.notext_id = notext_id
        self._compiled_step: Callable[..., torch.Tensor] | None = None
        self._stale_warned = False

    def step_function(
        self, compiled: bool = False, control: Control | None = None
    ) -> Callable[..., torch.Tensor]:
        """The backbone's per-step pass, eager or compiled with frozen weights (built once).

        Compiled with dynamic shapes, so clips of other lengths reuse the code, and
        with the weights (the backbone's and a ``control`` ControlNet's) frozen into
        it (:mod:`dubops.speech.frozen_compile`). Once any of those weights has
        changed in place since it was frozen, this returns the eager pass, so a
        compiled sampler is never stale; it pays only where weights stay fixed
        (serving, evaluation), not for training samples.
        """
        if not compiled:
            return self.backbone.step
        if not weights_unchanged([self.backbone, *modules_in(control)]):
            if not self._stale_warned:
                logger.warning(
                    "sampler.compile: weights changed after they were frozen into the "
                    "compiled pass; sampling eagerly from now on"
                )
                self._stale_warned = True
            return self.backbone.step
        if self._compiled_step is None:
            self._compiled_step = frozen_compile(self.backbone.step)
        return self._compiled_step

    @property
    def mel_dim(self) -> int:
        return self.backbone.config.mel_dim

    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Masked flow-matching MSE for a collated batch (``mel``, ``text``, ``mel_lengths``)."""
        loss, _ = self.infill_loss(batch["mel"], batch["text"], batch["mel_lengths"])
        return loss, {"flow_loss": float(loss.detach())}

    def infill_loss(
        self,
        mel: torch.Tensor,
        text: torch.Tensor,
        lengths: torch.Tensor,
        generator: torch.Generator | None = None,
        control: Control | None = None,
        drops: tuple[bool, bool] | None = None,
        hidden: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and the hidden-span mask.

        ``control`` is a ControlNet branch; ``drops`` = ``(drop_audio, drop_text)``
        overrides the random guidance dropout (the ControlNet stage draws its own);
        ``hidden (b, n)`` gives the frames to generate instead of F5's random span
        (:mod:`dubops.speech.context`: a timbre prompt before the whole clip).
        """
        b, n, _ = mel.shape
        mask = lengths_to_mask(lengths, n)
        if hidden is None:
            hidden = random_span_mask(
                lengths, self.config.mask_min, self.config.mask_max, generator
            )
        span = hidden[:, :n] & mask
        x0 = torch.randn(mel.shape, generator=generator, device=mel.device, dtype=mel.dtype)
        time = torch.rand(b, generator=generator, device=mel.device, dtype=mel.dtype)
        t = time[:, None, None]
        xt = (1 - t) * x0 + t * mel
        target = mel - x0
        cond = torch.where(span[..., None], torch.zeros_like(mel), mel)
        if self.notext_id is not None and text.shape[1] == n:
            text = torch.where(span | (text < 0), text, torch.full_like(text, self.notext_id))
        if drops is None:
            u = torch.rand(2, generator=generator).tolist()
            drop_text = u[1] < self.config.cond_drop_prob
            drop_audio = drop_text or u[0] < self.config.audio_drop_prob
        else:
            drop_audio, drop_text = drops
        pred = self.backbone(xt, cond, text, time, mask, drop_audio, drop_text, control)
        err = nnf.mse_loss(pred, target, reduction="none")[span]
        return err.mean(), span

    @torch.no_grad()
    def sample(
        self,
        cond: torch.Tensor,
        text: torch.Tensor,
        duration: int | torch.Tensor,
        lens: torch.Tensor | None = None,
        sampler: SamplerConfig | None = None,
        noise: torch.Tensor | None = None,
        seed: int | None = None,
        guidance: Guidance | None = None,
        control: Control | None = None,
        exact_duration: bool = False,
    ) -> torch.Tensor:
        """Generate mel frames after the prompt.

        Args:
            cond: prompt mel ``(b, n_p, m)``; ``lens`` its valid frames per sample.
            text: ``(b, nt)`` ids, -1 padded (aligned text already has the total length).
            duration: total frames (prompt + generated) per sample.
            sampler: steps, method, sway, CFG strength.
            noise: ``(b, n, m)`` starting noise; else drawn (per sample from ``seed``,
                as F5 does, so a sample does not depend on its batch).
            guidance: condition variants and their combination (default: F5's CFG).
            control: a ControlNet branch over the stacked guidance variants.
            exact_duration: keep ``duration`` as given (aligned text already spans it)
                instead of F5's "one frame past the text and prompt" minimum.

        Returns:
            ``(b, n, m)`` mel with the prompt frames copied back in.
        """
        self.eval()
        sampler = sampler or SamplerConfig()
        guidance = guidance or Guidance.standard(sampler.cfg_strength)
        b, n_p, m = cond.shape
        device, dtype = cond.device, cond.dtype
        if lens is None:
            lens = torch.full((b,), n_p, device=device, dtype=torch.long)
        if isinstance(duration, int):
            duration = torch.full((b,), duration, device=device, dtype=torch.long)
        if not exact_duration:
            # F5's rule: at least one frame past the prompt and past the text.
            duration = torch.maximum(torch.maximum((text != -1).sum(-1), lens) + 1, duration)
        n = int(duration.max())
        cond_mask = lengths_to_mask(lens, n).unsqueeze(-1)
        cond = nnf.pad(cond, (0, 0, 0, n - n_p))
        cond = torch.where(cond_mask, cond, torch.zeros_like(cond))
        # A batch of equal lengths has no padding to mask (the unmasked attention is faster).
        mask = lengths_to_mask(duration) if b > 1 and bool((duration != n).any()) else None
        if noise is None:
            noise = self._noise(duration, m, seed, device, dtype)
        prepared = self.backbone.prepare(cond, text, mask, guidance.variants)
        grid = time_grid(sampler.nfe, sampler.sway_coef, sampler.use_epss, dtype).to(device)
        embed = self.backbone.time_embed
        reps = prepared.repeats
        step = self.step_function(sampler.compile, control)

        def velocity(call: int, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            t_emb = embed(t.reshape(1).expand(b * reps))
            out = step(y, t_emb, prepared, control)
            return guidance.combine(list(out.chunk(reps, dim=0)))

        out = solve_ode(velocity, noise, grid, sampler.method)
        return torch.where(cond_mask, cond, out)

    def _noise(self, duration, m, seed, device, dtype) -> torch.Tensor:
        # A generator per call (the same numbers torch.manual_seed gives): two requests
        # sampled on two server threads never draw from one shared stream.
        parts = []
        for d in duration.tolist():
            rng = torch.Generator().manual_seed(seed) if seed is not None else None
            noise = torch.randn(d, m, generator=rng, dtype=dtype)
            parts.append(noise.to(device))
        return nn.utils.rnn.pad_sequence(parts, batch_first=True)
