"""Checks and automatic fixes on what a dubbing request brings: prompt audio, video slot.

Every refusal is a :class:`SpeechInputError` naming the request field, so a
server can answer 4xx with the field and the fix. Automatic fixes (documented,
not silent): a prompt at another sample rate is resampled (polyphase, exact
ratio), a multi-channel prompt is mixed down to mono, integer PCM is scaled to
[-1, 1].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dubops.errors import DubOpsError

if TYPE_CHECKING:
    import torch

    from dubops.config import AudioConfig

# More channels than this on an axis means that axis is time, not channels.
_MAX_CHANNELS = 8


class SpeechInputError(DubOpsError, ValueError):
    """A request input that cannot be used; ``field`` names it (``prompt_wav``, ``video``...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _mono(wave: np.ndarray) -> np.ndarray:
    """Mix ``(t, c)`` (soundfile) or ``(c, t)`` (torch audio) down to ``(t,)``."""
    if wave.ndim == 1:
        return wave
    if wave.ndim != 2:
        raise SpeechInputError(
            "prompt_wav", f"expected mono (t,) or (t, channels), got {wave.shape}"
        )
    channel_axis = 1 if wave.shape[1] <= min(_MAX_CHANNELS, wave.shape[0]) else 0
    return wave.mean(axis=channel_axis)


def prepare_prompt(
    wave: np.ndarray | torch.Tensor,
    sample_rate: int,
    target_rate: int,
    min_seconds: float = 0.5,
) -> np.ndarray:
    """The timbre prompt as float32 mono at ``target_rate``.

    Args:
        wave: ``(t,)``, ``(t, c)`` or ``(c, t)`` samples; float in [-1, 1] or integer PCM.
        sample_rate: the rate ``wave`` was recorded at.
        target_rate: the model's rate (``audio.sample_rate``).
        min_seconds: shortest prompt that still carries a voice.

    Raises:
        SpeechInputError: (``prompt_wav``) empty, not finite, or shorter than ``min_seconds``.
    """
    if sample_rate <= 0:
        raise SpeechInputError("prompt_wav", f"sample rate must be positive, got {sample_rate}")
    array = np.asarray(wave.detach().cpu() if hasattr(wave, "detach") else wave)
    if np.issubdtype(array.dtype, np.unsignedinteger):
        raise SpeechInputError(
            "prompt_wav", f"unsigned {array.dtype} PCM is unsupported; use int16 or float"
        )
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32) / float(np.iinfo(array.dtype).max + 1)
    array = _mono(array.astype(np.float32, copy=False))
    if not np.isfinite(array).all():
        raise SpeechInputError("prompt_wav", "contains NaN or infinite samples")
    seconds = len(array) / sample_rate
    if seconds < min_seconds:
        raise SpeechInputError(
            "prompt_wav",
            f"is {seconds:.2f} s long; the voice prompt needs at least {min_seconds:.2f} s "
            "of the target speaker (3-10 s works best)",
        )
    from dubops.audio import resample

    return resample(array, sample_rate, target_rate).astype(np.float32, copy=False)


def slot_frames(seconds: float, audio: AudioConfig) -> int:
    """Mel frames of a video slot of ``seconds`` (centred STFT: samples // hop + 1).

    Raises:
        SpeechInputError: (``video``) the slot is not a positive duration.
    """
    from dubops.audio import num_mel_frames

    if not np.isfinite(seconds) or seconds <= 0:
        raise SpeechInputError("video", f"slot duration must be positive, got {seconds} s")
    return num_mel_frames(round(seconds * audio.sample_rate), audio.hop_length)


def check_slot(
    num_phonemes: int,
    slot_frames: int,
    hop: int,
    sample_rate: int,
    min_frames_per_phoneme: int = 2,
) -> None:
    """Refuse a video slot too short to say the script in.

    Args:
        num_phonemes: phonemes that must be voiced (pauses may shrink to nothing).
        slot_frames: mel frames the video slot allows (:func:`slot_frames`).
        hop: mel hop in samples; with ``sample_rate`` turns frames into seconds.
        min_frames_per_phoneme: shortest intelligible phoneme, in mel frames
            (2 frames = 21 ms at 24 kHz / hop 256).

    Raises:
        SpeechInputError: (``script``) no phonemes; (``video``) the slot is shorter
            than ``num_phonemes * min_frames_per_phoneme`` frames.
    """
    if num_phonemes <= 0:
        raise SpeechInputError("script", "has no phonemes to speak")
    needed = num_phonemes * min_frames_per_phoneme
    if slot_frames < needed:
        frame_s = hop / sample_rate
        raise SpeechInputError(
            "video",
            f"the slot is {slot_frames * frame_s:.2f} s but the script's {num_phonemes} phonemes "
            f"need at least {needed * frame_s:.2f} s ({min_frames_per_phoneme} mel frames each); "
            "shorten the script or choose a longer slot",
        )
