"""The Vocos mel vocoder (Siuzdak 2023): ConvNeXt backbone + ISTFT head, our own code.

Why our own: the ``vocos`` package imports torchaudio (and encodec, Lightning
helpers) at import time; the network itself is small. Attribute names
(``backbone.embed``, ``backbone.convnext.<i>.dwconv``, ``head.out``,
``head.istft.window`` ...) follow vocos 0.1.0 so the published
``charactr/vocos-mel-24khz`` state dict loads with ``strict=True``; the
operations follow it step by step so waveforms match to float rounding (see
``tests/unit/test_speech_vocoder.py``). Only the mel variant is supported: no
AdaLayerNorm (EnCodec bandwidth conditioning), no ResNet backbone, no IMDCT head.

Shapes: ``b`` batch, ``m`` mel bins, ``n`` frames, ``d`` width, ``f`` = n_fft/2+1
frequency bins, ``t`` samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from dubops.sample_rates import SPEECH_SAMPLE_RATE

Padding = Literal["center", "same"]


@dataclass(frozen=True)
class VocosNetConfig:
    """Sizes of the mel Vocos; defaults are ``charactr/vocos-mel-24khz``."""

    sample_rate: int = SPEECH_SAMPLE_RATE
    n_mels: int = 100  # backbone input_channels
    dim: int = 512
    intermediate_dim: int = 1536
    num_layers: int = 8
    layer_scale_init_value: float | None = None  # vocos: None means 1 / num_layers
    n_fft: int = 1024
    hop_length: int = 256
    padding: Padding = "center"

    @classmethod
    def from_vocos_yaml(cls, config: dict[str, Any]) -> VocosNetConfig:
        """Read vocos's ``config.yaml`` (``feature_extractor`` / ``backbone`` / ``head``).

        Raises:
            ValueError: naming the section that is not the mel-spectrogram Vocos.
        """
        sections = {}
        expected = {
            "feature_extractor": "MelSpectrogramFeatures",
            "backbone": "VocosBackbone",
            "head": "ISTFTHead",
        }
        for key, cls_name in expected.items():
            section = config.get(key)
            if not isinstance(section, dict) or "class_path" not in section:
                raise ValueError(f"vocos config has no '{key}.class_path'")
            got = str(section["class_path"]).rsplit(".", 1)[-1]
            if got != cls_name:
                raise ValueError(
                    f"vocos config '{key}' is {section['class_path']}; only the mel Vocos "
                    f"({cls_name}) is supported (EnCodec / ResNet / IMDCT variants are not)"
                )
            sections[key] = section.get("init_args", {}) or {}
        fe, bb, hd = sections["feature_extractor"], sections["backbone"], sections["head"]
        if bb.get("adanorm_num_embeddings"):
            raise ValueError(
                "vocos config: adanorm_num_embeddings (EnCodec conditioning) is unsupported"
            )
        padding = hd.get("padding", "same")
        if padding not in ("center", "same"):
            raise ValueError(
                f"vocos config: head.padding must be 'center' or 'same', got {padding!r}"
            )
        n_mels = int(bb["input_channels"])
        if int(fe.get("n_mels", n_mels)) != n_mels:
            raise ValueError(
                f"vocos config: feature_extractor.n_mels ({fe['n_mels']}) differs from "
                f"backbone.input_channels ({n_mels})"
            )
        if int(hd["dim"]) != int(bb["dim"]):
            raise ValueError(f"vocos config: head.dim ({hd['dim']}) != backbone.dim ({bb['dim']})")
        return cls(
            sample_rate=int(fe.get("sample_rate", SPEECH_SAMPLE_RATE)),
            n_mels=n_mels,
            dim=int(bb["dim"]),
            intermediate_dim=int(bb["intermediate_dim"]),
            num_layers=int(bb["num_layers"]),
            layer_scale_init_value=bb.get("layer_scale_init_value"),
            n_fft=int(hd["n_fft"]),
            hop_length=int(hd["hop_length"]),
            padding=padding,
        )


class ConvNeXtBlock(nn.Module):
    """Depthwise conv 7 + LayerNorm + pointwise MLP, layer-scaled residual (ConvNeXt)."""

    def __init__(self, dim: int, intermediate_dim: int, layer_scale_init_value: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = (
            nn.Parameter(layer_scale_init_value * torch.ones(dim))
            if layer_scale_init_value > 0
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)  # (b, n, d)
        h = self.pwconv2(self.act(self.pwconv1(self.norm(h))))
        if self.gamma is not None:
            h = self.gamma * h
        return x + h.transpose(1, 2)  # (b, d, n)


class VocosBackbone(nn.Module):
    """Conv embed, LayerNorm, ConvNeXt blocks, final LayerNorm: (b, m, n) -> (b, n, d)."""

    def __init__(self, config: VocosNetConfig) -> None:
        super().__init__()
        c = config
        self.embed = nn.Conv1d(c.n_mels, c.dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(c.dim, eps=1e-6)
        scale = c.layer_scale_init_value or 1 / c.num_layers
        self.convnext = nn.ModuleList(
            [ConvNeXtBlock(c.dim, c.intermediate_dim, scale) for _ in range(c.num_layers)]
        )
        self.final_layer_norm = nn.LayerNorm(c.dim, eps=1e-6)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.embed(mel)  # (b, d, n)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.convnext:
            x = block(x)
        return self.final_layer_norm(x.transpose(1, 2))  # (b, n, d)


class ISTFT(nn.Module):
    """Inverse STFT with vocos's two paddings.

    "center" is ``torch.istft(center=True)``; "same" trims ``(win - hop) / 2`` on
    each side by hand, because torch.istft's NOLA check rejects the un-centred
    edges (pytorch issue 62323), exactly as vocos's ``spectral_ops.ISTFT`` does.
    """

    def __init__(self, n_fft: int, hop_length: int, win_length: int, padding: Padding) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.padding = padding
        self.register_buffer("window", torch.hann_window(win_length))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex ``(b, f, n)`` -> ``(b, t)``."""
        if self.padding == "center":
            return torch.istft(
                spec, self.n_fft, self.hop_length, self.win_length, self.window, center=True
            )
        pad = (self.win_length - self.hop_length) // 2
        frames = spec.shape[-1]
        ifft = torch.fft.irfft(spec, self.n_fft, dim=1, norm="backward")
        ifft = ifft * self.window[None, :, None]  # (b, win, n)
        size = (frames - 1) * self.hop_length + self.win_length
        fold = dict(
            output_size=(1, size), kernel_size=(1, self.win_length), stride=(1, self.hop_length)
        )
        y = nn.functional.fold(ifft, **fold)[:, 0, 0, pad:-pad]
        window_sq = self.window.square().expand(1, frames, -1).transpose(1, 2)
        envelope = nn.functional.fold(window_sq, **fold).squeeze()[pad:-pad]
        assert (envelope > 1e-11).all(), "window overlap-add envelope has zeros"
        return y / envelope


class ISTFTHead(nn.Module):
    """Linear to log-magnitude and phase per bin, then the inverse STFT: (b, n, d) -> (b, t)."""

    def __init__(self, config: VocosNetConfig) -> None:
        super().__init__()
        c = config
        self.out = nn.Linear(c.dim, c.n_fft + 2)
        self.istft = ISTFT(c.n_fft, c.hop_length, c.n_fft, c.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.out(x).transpose(1, 2)  # (b, 2f, n)
        mag, phase = x.chunk(2, dim=1)
        # vocos caps the magnitude at 1e2 against exploding outputs.
        mag = torch.clip(torch.exp(mag), max=1e2)
        spec = mag * (torch.cos(phase) + 1j * torch.sin(phase))  # (b, f, n)
        return self.istft(spec)


class VocosNet(nn.Module):
    """Backbone + head: log-mel ``(b, m, n)`` -> waveform ``(b, t)``."""

    def __init__(self, config: VocosNetConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = VocosBackbone(config)
        self.head = ISTFTHead(config)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(mel))
