"""Audio I/O and the F5-TTS mel front end.

Shapes: ``t`` samples, ``m`` mel bins, ``n`` mel frames. Waveforms are float32
in [-1, 1], mono. Mel parameters come from :class:`dubops.config.AudioConfig`.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dubops.errors import MediaError
from dubops.fileio import atomic_path

if TYPE_CHECKING:
    import torch

    from dubops.config import AudioConfig


def read_wav(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read a wav as mono float32, resampled to ``sample_rate`` when given.

    Returns:
        ``(wave (t,), sample_rate)``.
    """
    import soundfile as sf

    try:
        wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises its own LibsndfileError
        raise MediaError(f"cannot read audio file {path}: {exc}") from None
    wave = wave.mean(axis=1)
    if sample_rate is not None and sr != sample_rate:
        wave, sr = resample(wave, sr, sample_rate), sample_rate
    return wave.astype(np.float32), sr


def write_wav(path: str | Path, wave: np.ndarray, sample_rate: int) -> None:
    """Write mono float audio as 16-bit PCM, atomically (temp file, then rename)."""
    import soundfile as sf

    wave = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), wave, sample_rate, subtype="PCM_16", format="WAV")


def wav_bytes(wave: np.ndarray, sample_rate: int) -> bytes:
    """Mono float audio as a 16-bit PCM wav file's bytes (what servers return)."""
    import io

    import soundfile as sf

    buffer = io.BytesIO()
    wave = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0)
    sf.write(buffer, wave, sample_rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Polyphase resampling (exact rational ratio, e.g. 22050 -> 24000 is 160/147)."""
    if orig_sr == target_sr:
        return np.asarray(wave, dtype=np.float32)
    from scipy.signal import resample_poly

    ratio = Fraction(target_sr, orig_sr)
    out = resample_poly(np.asarray(wave, dtype=np.float64), ratio.numerator, ratio.denominator)
    return out.astype(np.float32)


def num_mel_frames(num_samples: int, hop_length: int) -> int:
    """Frames the centred STFT gives for ``num_samples`` (F5-TTS convention)."""
    return num_samples // hop_length + 1


class MelFrontEnd:
    """Log-mel spectrogram exactly as F5-TTS's ``vocos`` mel type computes it.

    (torchaudio's MelSpectrogram with center=True, power=1, reflect padding,
    HTK-free Slaney-less default filters -> log(clamp(x, 1e-5)).) Implemented
    with torch.stft so torchaudio is not needed.
    """

    def __init__(self, config: AudioConfig) -> None:
        import torch

        self.config = config
        self.window = torch.hann_window(config.win_length)
        self.filters = torch.from_numpy(mel_filters(config))  # (m, n_fft//2+1)

    def __call__(self, wave: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Mel of ``wave`` ((t,) or (b, t)) -> ``(m, n)`` or ``(b, m, n)``."""
        import torch

        x = torch.as_tensor(wave, dtype=torch.float32)
        squeeze = x.dim() == 1
        if squeeze:
            x = x.unsqueeze(0)
        c = self.config
        spec = torch.stft(
            x,
            n_fft=c.n_fft,
            hop_length=c.hop_length,
            win_length=c.win_length,
            window=self.window.to(x.device),
            center=True,
            pad_mode="reflect",
            return_complex=True,
        ).abs()  # (b, f, n)
        mel = torch.matmul(self.filters.to(x.device), spec)  # (b, m, n)
        mel = torch.log(torch.clamp(mel, min=c.log_clamp))
        return mel[0] if squeeze else mel


def mel_filters(config: AudioConfig) -> np.ndarray:
    """HTK-scale triangular filters without norm (torchaudio's defaults)."""
    n_freqs = config.n_fft // 2 + 1
    all_freqs = np.linspace(0, config.sample_rate // 2, n_freqs)

    def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    m_pts = np.linspace(hz_to_mel(0.0), hz_to_mel(config.sample_rate / 2), config.n_mels + 2)
    f_pts = mel_to_hz(m_pts)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))  # (f, m)
    return fb.T.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _filter_pinv(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Moore-Penrose pseudo-inverse of the mel filter bank, computed once per shape.

    In float64 with NumPy: torch's float32 pinv of this non-contiguous matrix took
    ~2 s per call here, and torch.linalg.lstsq's default CPU driver returned a
    wrong solution for this under-determined system.
    """
    from types import SimpleNamespace

    shape = SimpleNamespace(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels)
    filters = mel_filters(shape).astype(np.float64)  # type: ignore[arg-type]
    return np.linalg.pinv(filters).astype(np.float32)


def mel_magnitude(mel: np.ndarray | torch.Tensor, config: AudioConfig) -> torch.Tensor:
    """``(n_fft // 2 + 1, frames)`` linear magnitudes of a log-mel (filter pseudo-inverse)."""
    import torch

    mel_t = torch.as_tensor(mel, dtype=torch.float32)
    inverse = torch.from_numpy(_filter_pinv(config.sample_rate, config.n_fft, config.n_mels))
    return (inverse @ torch.exp(mel_t)).clamp(min=0)


def random_phase(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Unit complex numbers of uniformly random angle (Griffin-Lim's start)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return torch.exp(2j * torch.pi * torch.rand(shape, generator=gen))


def phase_iterations(
    magnitude: torch.Tensor, phase: torch.Tensor, config: AudioConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Griffin-Lim from ``phase``: ``(wave, the last spectrogram's unit phase)``.

    With ``griffin_lim_momentum`` > 0 each new phase estimate overshoots along its
    last change (fast Griffin-Lim), which converges in fewer of the iterations that
    are this vocoder's whole cost. The wave is not normalised.
    """
    import torch

    window = torch.hann_window(config.win_length)
    spec = magnitude * phase
    momentum = config.griffin_lim_momentum / (1 + config.griffin_lim_momentum)
    previous = None
    for _ in range(config.griffin_lim_iters):
        wave = torch.istft(spec, config.n_fft, config.hop_length, config.win_length, window=window)
        rebuilt = torch.stft(
            wave,
            config.n_fft,
            config.hop_length,
            config.win_length,
            window=window,
            return_complex=True,
        )
        phase = rebuilt if previous is None or not momentum else rebuilt - momentum * previous
        previous = rebuilt
        phase = phase / (phase.abs() + 1e-16)
        spec = magnitude * phase
    wave = torch.istft(spec, config.n_fft, config.hop_length, config.win_length, window=window)
    return wave, phase


def griffin_lim(mel: np.ndarray | torch.Tensor, config: AudioConfig) -> np.ndarray:
    """Invert a log-mel to a waveform with no weights: pseudo-inverse + Griffin-Lim.

    The weight-free vocoder: the ceiling any mel model reaches with it is the
    "copy-synthesis" baseline. Peaks are limited to ±1 (:func:`limit_peaks`).
    """
    magnitude = mel_magnitude(mel, config)
    wave, _ = phase_iterations(magnitude, random_phase(tuple(magnitude.shape)), config)
    return limit_peaks(wave).numpy().astype(np.float32)


def limit_peaks(wave: torch.Tensor, knee: float = 0.5) -> torch.Tensor:
    """Keep a wave within ±1 without lowering its level: samples below ``knee`` pass
    unchanged, louder ones bend smoothly towards 1 (a tanh knee, slope 1 where it starts).

    Why not peak normalisation: dividing by the peak makes every loud utterance as loud
    as any other, which erases the loudness an emotion carries (anger's +4 dB over the
    speaker's calm voice); the corpus's own speech saturates at ±1 instead.
    """
    import torch

    magnitude = wave.abs()
    room = 1.0 - knee
    bent = knee + room * torch.tanh((magnitude - knee) / room)
    return torch.where(magnitude > knee, torch.sign(wave) * bent, wave)


def speech_envelope(wave: np.ndarray, sample_rate: int, fps: int) -> np.ndarray:
    """RMS energy per video frame (``fps``), the signal the cartoon mouths follow."""
    hop = sample_rate / fps
    n = int(np.ceil(len(wave) / hop))
    env = np.zeros(n, dtype=np.float32)
    for i in range(n):
        seg = wave[int(i * hop) : int((i + 1) * hop)]
        env[i] = float(np.sqrt(np.mean(seg**2))) if len(seg) else 0.0
    return env
