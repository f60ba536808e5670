"""A pitch head on the ControlNet's conditions: the F0 and loudness the speech should have.

Why: the tiny DiT's mels carry the spectral envelope but no harmonics, so the
speech has no pitch at all and the emotion's pitch is lost (issue 23). This
head reads the fused condition sequence (video, conclusion and, in a graph
model, the footage graph's emotion) and each frame's phoneme, and predicts
per mel frame whether it is voiced and its log-F0 relative to the timbre
prompt's median (speaker-normalised, so it carries over to unseen voices; the
emotion classifier compares with the prompt the same way), and each frame's
loudness relative to the prompt's speech frames. It trains with the
ControlNet as an auxiliary loss, so the conditions must carry the pitch; at
inference its F0 contour is laid over the sampled mel as a harmonic comb
(:mod:`dubops.speech.harmonics`) and its loudness replaces the mel's own: a
FastSpeech 2 style variance adaptor, read after sampling rather than fed to
the decoder.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn

from dubops.speech.settings import PitchConfig


class PitchHead(nn.Module):
    """Condition ``(b, n, d)`` + frame phonemes ``(b, n)`` -> (log-F0 over the prompt, voicing)."""

    def __init__(self, config: PitchConfig, vocab_size: int, cond_dim: int) -> None:
        super().__init__()
        dim = config.dim
        self.phoneme = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.condition = nn.Linear(cond_dim, dim)
        self.convs = nn.ModuleList(
            nn.Conv1d(dim, dim, config.kernel, padding=config.kernel // 2)
            for _ in range(config.layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(config.layers))
        self.out = nn.Linear(dim, 3)

    def forward(
        self, condition: torch.Tensor, phonemes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> log-F0 over the prompt's, voicing logit, loudness over the prompt's; each (b, n)."""
        x = self.condition(condition) + self.phoneme(phonemes.clamp(min=0))
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = x + nnf.gelu(conv(norm(x).transpose(1, 2)).transpose(1, 2))
        out = self.out(x)
        return out[..., 0], out[..., 1], out[..., 2]


# Frames this far (in nats, ~26 dB) below the loudest are silence.
SILENCE_NATS = 3.0


def loudness(mel: torch.Tensor) -> torch.Tensor:
    """Per-frame log of the summed mel magnitudes of ``(..., n, m)`` -> ``(..., n)``.

    The strong low bands dominate it, as they dominate a waveform's RMS; a mean of
    the log-mel is dominated by the many weak high bands instead, and anger
    (+3.8 dB RMS over its prompt) then read as quieter than its prompt.
    """
    return torch.logsumexp(mel, dim=-1)


def loudness_reference(mel: torch.Tensor) -> float:
    """Mean loudness of a prompt mel's ``(n, m)`` speech frames (silence left out)."""
    level = loudness(mel)
    return float(level[level > level.max() - SILENCE_NATS].mean())


def frame_phonemes(phonemes: torch.Tensor, durations: torch.Tensor, n: int) -> torch.Tensor:
    """``(b, p)`` corpus ids and their frames -> ``(b, n)`` one id per mel frame (0 pads)."""
    out = phonemes.new_zeros(phonemes.shape[0], n)
    for i in range(phonemes.shape[0]):
        ids = torch.repeat_interleave(phonemes[i], durations[i].clamp(min=0))[:n]
        out[i, : len(ids)] = ids
    return out


def pitch_loss(
    prediction: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    f0: torch.Tensor,
    prompt_logf0: torch.Tensor,
    level: torch.Tensor,
    prompt_level: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Log-F0 MSE on voiced frames + voicing BCE + loudness MSE, on the frames in ``mask``.

    ``f0 (b, n)`` in Hz, 0 where unvoiced; ``level (b, n)`` the clip's loudness;
    ``prompt_logf0`` and ``prompt_level`` ``(b,)`` the prompt's references.
    """
    delta, voiced_logit, loud = prediction
    voiced = (f0 > 0) & mask
    target = torch.log(f0.clamp(min=1.0)) - prompt_logf0[:, None]
    mse = ((delta - target) ** 2)[voiced].mean() if bool(voiced.any()) else delta.sum() * 0
    bce = nnf.binary_cross_entropy_with_logits(voiced_logit[mask], voiced[mask].float())
    loud_mse = ((loud - (level - prompt_level[:, None])) ** 2)[mask].mean()
    return mse + bce + loud_mse


def contour(
    delta: torch.Tensor,
    voiced_logit: torch.Tensor,
    prompt_logf0: float,
    threshold: float,
    smooth_frames: int = 9,
    scale: float = 1.0,
) -> np.ndarray:
    """One clip's ``(n,)`` predicted F0 in Hz, 0 on unvoiced frames.

    Voicing is median-filtered over 5 frames and log-F0 averaged over
    ``smooth_frames``: the head's frame-to-frame jitter (~9 % a frame) makes the
    comb's harmonics jump, and the vocoder's output then has no period at all
    (pYIN found 14 % of a clip's frames voiced with the raw contour, 70 % smoothed
    over 9 frames, 72 % with the ground truth's).

    ``scale`` then multiplies the voiced log-F0's movement around its own mean:
    a head trained on a squared error predicts the mean of the contours it could
    be, flatter than any one of them (the rendered F0 spread was ~2/3 of the
    ground truth's), and a flat contour is what the classifier calls fear. This
    is the global-variance correction of statistical speech synthesis.
    """
    from scipy.ndimage import median_filter, uniform_filter1d

    voiced = torch.sigmoid(voiced_logit).cpu().numpy() >= threshold
    voiced = median_filter(voiced.astype(np.uint8), size=5, mode="nearest").astype(bool)
    log_f0 = delta.detach().cpu().numpy().astype(np.float64)
    if smooth_frames > 1:
        log_f0 = uniform_filter1d(log_f0, smooth_frames, mode="nearest")
    if scale != 1.0 and voiced.any():
        centre = log_f0[voiced].mean()
        log_f0 = centre + scale * (log_f0 - centre)
    return np.where(voiced, np.exp(prompt_logf0 + log_f0), 0.0)


def relevel(
    mel: torch.Tensor, loud: torch.Tensor, prompt_level: float, strength: float
) -> torch.Tensor:
    """``mel (n, m)`` with its speech frames moved to the predicted loudness (silence kept).

    The gain is smoothed over 5 frames so it follows syllables, not single frames.
    """
    own = loudness(mel)
    gain = (prompt_level + loud.to(mel)) - own
    gain = nnf.avg_pool1d(gain[None, None], 5, stride=1, padding=2, count_include_pad=False)[0, 0]
    speech = own > own.max() - SILENCE_NATS
    return mel + strength * torch.where(speech, gain, torch.zeros_like(gain))[:, None]
