"""A test-only stand-in for torchaudio, enough for ``vocos`` 0.1.0 to import.

Why: torchaudio is deliberately absent beside our torch build, but the parity
test builds vocos's own ``VocosBackbone`` / ``ISTFTHead`` to check ours against.
Importing any vocos module runs ``vocos/__init__`` -> feature extractors ->
``import torchaudio`` (and encodec's ``import torchaudio``); ``vocos.heads``
needs ``torchaudio.functional.functional._hz_to_mel`` / ``_mel_to_hz``. The
``MelSpectrogram`` stand-in keeps torchaudio's buffer names
(``spectrogram.window``, ``mel_scale.fb``) so a whole ``vocos.Vocos`` has the
published checkpoint's state-dict layout. Nothing in ``dubops`` imports this.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import sys
import types
from collections.abc import Iterator

import torch
from torch import nn


def _hz_to_mel(freq: float, mel_scale: str = "htk") -> float:
    if mel_scale != "htk":
        raise NotImplementedError("the torchaudio shim has only the HTK mel scale")
    return 2595.0 * math.log10(1.0 + freq / 700.0)


def _mel_to_hz(mels: torch.Tensor, mel_scale: str = "htk") -> torch.Tensor:
    if mel_scale != "htk":
        raise NotImplementedError("the torchaudio shim has only the HTK mel scale")
    return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)


class Spectrogram(nn.Module):
    """Magnitude STFT raised to ``power``, with torchaudio's ``window`` buffer."""

    def __init__(
        self,
        n_fft: int = 400,
        win_length: int | None = None,
        hop_length: int | None = None,
        power: float | None = 2.0,
        center: bool = True,
        pad_mode: str = "reflect",
        **_: object,
    ) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.win_length = win_length or n_fft
        self.hop_length = hop_length or self.win_length // 2
        self.power, self.center, self.pad_mode = power, center, pad_mode
        self.register_buffer("window", torch.hann_window(self.win_length))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            wave,
            self.n_fft,
            self.hop_length,
            self.win_length,
            self.window,
            center=self.center,
            pad_mode=self.pad_mode,
            return_complex=True,
        )
        return spec if self.power is None else spec.abs().pow(self.power)


class _MelScale(nn.Module):
    """HTK triangular filters without norm, torchaudio's ``fb`` (freqs, mels)."""

    def __init__(self, n_mels: int, sample_rate: int, n_freqs: int) -> None:
        super().__init__()
        all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
        m_pts = torch.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2)
        f_pts = _mel_to_hz(m_pts)
        f_diff = f_pts[1:] - f_pts[:-1]
        slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)
        down = -slopes[:, :-2] / f_diff[:-1]
        up = slopes[:, 2:] / f_diff[1:]
        self.register_buffer("fb", torch.clamp(torch.min(down, up), min=0.0))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)


class MelSpectrogram(nn.Module):
    """``Spectrogram`` then ``MelScale``, as torchaudio composes them."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 400,
        win_length: int | None = None,
        hop_length: int | None = None,
        n_mels: int = 128,
        power: float = 2.0,
        center: bool = True,
        **_: object,
    ) -> None:
        super().__init__()
        self.spectrogram = Spectrogram(n_fft, win_length, hop_length, power, center)
        self.win_length, self.hop_length = self.spectrogram.win_length, self.spectrogram.hop_length
        self.mel_scale = _MelScale(n_mels, sample_rate, n_fft // 2 + 1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.mel_scale(self.spectrogram(wave))


_NAMES = (
    "torchaudio",
    "torchaudio.functional",
    "torchaudio.functional.functional",
    "torchaudio.transforms",
)


def _build() -> dict[str, types.ModuleType]:
    root = types.ModuleType("torchaudio")
    functional = types.ModuleType("torchaudio.functional")
    inner = types.ModuleType("torchaudio.functional.functional")
    inner._hz_to_mel = _hz_to_mel  # type: ignore[attr-defined]
    inner._mel_to_hz = _mel_to_hz  # type: ignore[attr-defined]
    functional.functional = inner  # type: ignore[attr-defined]
    transforms = types.ModuleType("torchaudio.transforms")
    transforms.MelSpectrogram = MelSpectrogram  # type: ignore[attr-defined]
    transforms.Spectrogram = Spectrogram  # type: ignore[attr-defined]
    root.functional, root.transforms = functional, transforms  # type: ignore[attr-defined]
    return dict(zip(_NAMES, (root, functional, inner, transforms), strict=True))


def _real_torchaudio_present() -> bool:
    loaded = sys.modules.get("torchaudio")
    if loaded is not None:
        return getattr(loaded, "__file__", None) is not None  # stubs have no file
    return importlib.util.find_spec("torchaudio") is not None


@contextlib.contextmanager
def torchaudio_shim() -> Iterator[None]:
    """Within the block ``import torchaudio`` gets the stand-in; restored afterwards.

    Modules imported inside the block (vocos) keep their references to the
    stand-in. A real torchaudio, when one imports, is left alone. Other tests'
    stubs (the f5-tts parity test leaves a bare one) are swapped out for the
    block and put back.
    """
    if _real_torchaudio_present():
        yield
        return
    previous = {name: sys.modules.get(name) for name in _NAMES}
    sys.modules.update(_build())
    try:
        yield
    finally:
        for name, module in previous.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
