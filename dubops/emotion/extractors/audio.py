"""Audio emotion: a conv + GRU speech-emotion encoder on log-mels, trained here.

The paper uses Emotion2Vec; no speech-emotion weights ship offline, so this
encoder is trained on the corpus. It must stay independent of the evaluation's
EMO-ACC classifier (``dubops.evaluation.emotion``: logistic regression on pitch
and energy statistics), so generated speech is never graded by the network that
conditioned it: here the input is the log-mel itself, the model a strided
conv stack, a GRU and mean + standard-deviation pooling, trained in its own run.

Speaker normalisation: the same encoder also reads the clip's timbre prompt
(the same speaker talking calmly) and the projection sees
``[h_clip, h_clip - h_prompt]``, so an emotion's change of pitch, loudness and
rate is measured from that speaker's own calm voice; the corpus's emotions are
prosody *deltas* from each speaker's base (DESIGN.md: 87 % vs 64 % accuracy with
vs without per-speaker normalisation of prosody statistics).

Shapes: ``b`` clips, ``n`` mel frames, ``m`` mel bins, ``c`` channels, ``g`` GRU size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn

from dubops.emotion.extractors.base import ClipInputs, TrainedExtractor
from dubops.emotion.extractors.layers import CosineHead, Projection

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig

_STRIDES = (2, 2, 2)


class MelEncoder(nn.Module):
    """(b, n, m) log-mel + mask -> (b, 2 g) mean and std of GRU states over valid frames."""

    def __init__(self, n_mels: int, channels: int, gru: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = n_mels
        for stride in _STRIDES:
            layers += [
                nn.Conv1d(c_in, channels, 5, stride=stride, padding=2),
                nn.BatchNorm1d(channels),
                nn.GELU(),
            ]
            c_in = channels
        self.conv = nn.Sequential(*layers)
        self.gru = nn.GRU(channels, gru, batch_first=True)
        self.out_dim = 2 * gru

    def forward(self, mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.conv(mel.transpose(1, 2)).transpose(1, 2)  # (b, n', c)
        lengths = mask.sum(1)
        for stride in _STRIDES:
            lengths = (lengths - 1) // stride + 1
        valid = torch.arange(x.shape[1])[None, :] < lengths[:, None]  # (b, n')
        # A unidirectional GRU's states at valid steps never see the padding after them.
        h, _ = self.gru(x)  # (b, n', g)
        w = valid.to(h.dtype).unsqueeze(-1)
        count = w.sum(1).clamp(min=1.0)
        mean = (h * w).sum(1) / count
        var = (((h - mean[:, None]) ** 2) * w).sum(1) / count
        return torch.cat([mean, (var + 1e-5).sqrt()], dim=-1)


class AudioNet(nn.Module):
    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__()
        n_mels, dim = settings["audio"]["n_mels"], settings["dim"]
        self.speaker_norm = bool(settings["speaker_norm"])
        self.prompt_centre = bool(settings.get("prompt_centre", False))
        # Per-bin log-mel statistics of the training speech, set by the trainer.
        self.register_buffer("mel_mean", torch.zeros(n_mels))
        self.register_buffer("mel_std", torch.ones(n_mels))
        self.encoder = MelEncoder(n_mels, settings["channels"], settings["gru"])
        width = self.encoder.out_dim * (2 if self.speaker_norm else 1)
        self.project = Projection(width, dim, dim, settings["fit"]["dropout"])
        self.head = CosineHead(dim, settings["logit_scale"])

    def _encode(
        self, mel: torch.Tensor, mask: torch.Tensor, centre: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Encode (b, n, m); ``centre`` (b, m) replaces the global per-bin mean when given."""
        mean = self.mel_mean if centre is None else centre[:, None, :]
        x = (mel - mean) / self.mel_std * mask.unsqueeze(-1)
        return self.encoder(x, mask)

    def forward(
        self,
        mel: torch.Tensor,
        mel_mask: torch.Tensor,
        prompt: torch.Tensor,
        prompt_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """mel (b, n, m) + mask, prompt (b, n_p, m) + mask -> unit (b, d), [logits (b, 7)]."""
        if not self.speaker_norm:
            h = self._encode(mel, mel_mask)  # (b, 2g)
        else:
            centre = None
            if self.prompt_centre:  # the speaker's calm average spectrum as the zero point
                w = prompt_mask.to(prompt.dtype).unsqueeze(-1)
                centre = (prompt * w).sum(1) / w.sum(1).clamp(min=1.0)  # (b, m)
            h = self._encode(mel, mel_mask, centre)  # (b, 2g)
            p = self._encode(prompt, prompt_mask, centre)
            h = torch.cat([h, h - p], dim=-1)  # (b, 4g)
        z = nnf.normalize(self.project(h), dim=-1)
        return z, [self.head(z)]


class AudioExtractor(TrainedExtractor):
    """Speech emotion vectors of a clip's target audio (the library's direct emotion)."""

    name = "audio"

    def __init__(self, settings: dict[str, Any], net: Any | None = None, version: str = "") -> None:
        super().__init__(settings, net, version)
        self._front_end: Any = None

    @classmethod
    def settings_from(cls, config: DubOpsConfig) -> dict[str, Any]:
        e = config.emotion
        return {
            "dim": e.dim,
            "logit_scale": e.logit_scale,
            **e.audio.model_dump(mode="json"),
            "audio": config.audio.model_dump(mode="json"),
        }

    @classmethod
    def build_net(cls, settings: dict[str, Any]) -> nn.Module:
        return AudioNet(settings)

    def _mel(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        from dubops.audio import MelFrontEnd, resample
        from dubops.config import AudioConfig

        if self._front_end is None:
            self._front_end = MelFrontEnd(AudioConfig(**self.settings["audio"]))
        target = self._front_end.config.sample_rate
        wave = resample(wave, sample_rate, target)[: int(self.settings["max_seconds"] * target)]
        return self._front_end(wave).T.contiguous().numpy()  # (n, m)

    def prepare(self, batch: Sequence[ClipInputs]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per clip: ``(mel (n, m), prompt mel (n_p, m))`` float32."""
        out = []
        for item in batch:
            if item.wave is None or (self.settings["speaker_norm"] and item.prompt_wave is None):
                raise ValueError(
                    f"clip {item.clip_id!r}: the audio extractor needs the clip's speech "
                    "and its timbre prompt (manifest audio_path and prompt_audio_path)"
                )
            mel = self._mel(item.wave, item.sample_rate)
            prompt = (
                mel if item.prompt_wave is None else self._mel(item.prompt_wave, item.sample_rate)
            )
            out.append((mel, prompt))
        return out

    def collate(self, prepared: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, torch.Tensor]:
        from dubops.data.datasets import pad_stack

        mel, mel_mask = pad_stack([torch.from_numpy(p[0]) for p in prepared])
        prompt, prompt_mask = pad_stack([torch.from_numpy(p[1]) for p in prepared])
        return {"mel": mel, "mel_mask": mel_mask, "prompt": prompt, "prompt_mask": prompt_mask}
