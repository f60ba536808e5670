"""Mel -> waveform: one interface, a weight-free default and the published Vocos.

* :class:`GriffinLimVocoder` needs no weights (the default, and the ceiling of
  "copy synthesis" without a neural vocoder).
* :class:`VocosVocoder` loads a local ``charactr/vocos-mel-24khz`` folder
  (``config.yaml`` + ``pytorch_model.bin`` or ``*.safetensors``) into our
  :class:`~dubops.speech.vocos_net.VocosNet`; nothing is downloaded. F5-TTS
  decodes its mels with this vocoder. Its features are ``log(clip(mel, 1e-7))``
  where our front end floors at 1e-5 (F5-TTS's choice); only near-silent bins differ.

Shapes: ``b`` batch, ``m`` mel bins, ``n`` frames, ``t`` samples.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from dubops.errors import DubOpsError

if TYPE_CHECKING:
    from dubops.config import AudioConfig
    from dubops.speech.vocos_net import VocosNet

logger = logging.getLogger(__name__)

VocoderName = Literal["griffin-lim", "vocos"]
_WEIGHT_FILES = ("pytorch_model.bin", "model.safetensors")
# The published checkpoint also holds its mel front end's buffers (torchaudio's
# MelSpectrogram window and filter bank): not vocoder weights, dropped on load.
_FEATURE_PREFIX = "feature_extractor."


class VocoderError(DubOpsError, ValueError):
    """A vocoder that cannot be built: unknown name, missing or mis-fitting files."""


class Vocoder(ABC):
    """Turns log-mels into waveforms at :attr:`sample_rate`."""

    sample_rate: int
    n_mels: int

    @abstractmethod
    def _decode(self, mel: torch.Tensor) -> torch.Tensor:
        """``(b, m, n)`` float32 -> ``(b, t)``."""

    def decode(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(m, n)`` or ``(b, m, n)`` -> waveform ``(b, t)`` on the mel's device.

        Raises:
            ValueError: when the mel is not 2-D/3-D or has the wrong number of bins.
        """
        mel = torch.as_tensor(mel, dtype=torch.float32)
        if mel.dim() == 2:
            mel = mel.unsqueeze(0)
        if mel.dim() != 3 or mel.shape[1] != self.n_mels:
            raise ValueError(
                f"vocoder expects a log-mel of shape (b, {self.n_mels}, n) or ({self.n_mels}, n), "
                f"got {tuple(mel.shape)}; mels from the model are (b, n, m): transpose them"
            )
        return self._decode(mel)


class GriffinLimVocoder(Vocoder):
    """Pseudo-inverse of the mel filters + Griffin-Lim (:func:`dubops.audio.griffin_lim`)."""

    def __init__(self, audio: AudioConfig) -> None:
        self.audio = audio
        self.sample_rate = audio.sample_rate
        self.n_mels = audio.n_mels

    def _decode(self, mel: torch.Tensor) -> torch.Tensor:
        from dubops.audio import griffin_lim
        from dubops.speech.griffin_lim_chunks import griffin_lim_in_chunks

        # One item at a time (each its own random phase); a long one in chunks, so
        # memory stays bounded.
        chunk = self.audio.griffin_lim_chunk_frames
        waves = [
            torch.from_numpy(
                griffin_lim_in_chunks(m.cpu(), self.audio, chunk)
                if m.shape[-1] > chunk
                else griffin_lim(m.cpu(), self.audio)
            )
            for m in mel
        ]
        return torch.stack(waves).to(mel.device)


class VocosVocoder(Vocoder):
    """The mel Vocos from a local checkpoint folder, run in inference mode."""

    def __init__(self, net: VocosNet) -> None:
        self.net = net.eval()
        self.sample_rate = net.config.sample_rate
        self.n_mels = net.config.n_mels

    @classmethod
    def from_path(cls, path: str | Path) -> VocosVocoder:
        """Load ``path``: a folder with ``config.yaml`` and weights, or a weights file beside one.

        Weights are ``pytorch_model.bin`` (read with ``weights_only=True``) or
        ``*.safetensors``; the load is strict apart from the explicitly dropped
        ``feature_extractor.*`` buffers.

        Raises:
            VocoderError: naming the missing file, the unreadable one or the
                parameters that do not fit.
        """
        import yaml

        from dubops.speech.vocos_net import VocosNet, VocosNetConfig

        config_path, weights_path = _locate(Path(path))
        try:
            raw = yaml.safe_load(config_path.read_text())
            config = VocosNetConfig.from_vocos_yaml(raw if isinstance(raw, dict) else {})
        except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            raise VocoderError(f"{config_path} is not a mel Vocos config: {exc}") from None
        net = VocosNet(config)
        state = _read_weights(weights_path)
        dropped = [k for k in state if k.startswith(_FEATURE_PREFIX)]
        state = {k: v for k, v in state.items() if not k.startswith(_FEATURE_PREFIX)}
        if dropped:
            logger.debug("ignoring %d mel front-end buffers of %s", len(dropped), weights_path)
        expected = net.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        shapes = [
            f"{k}: {tuple(v.shape)} vs {tuple(expected[k].shape)}"
            for k, v in state.items()
            if k in expected and v.shape != expected[k].shape
        ]
        if missing or unexpected or shapes:
            raise VocoderError(
                f"{weights_path} does not fit {config_path} (missing: {missing[:4]}, "
                f"unexpected: {unexpected[:4]}, shapes: {shapes[:3]}); "
                "use the config.yaml published with these weights"
            )
        net.load_state_dict(state, strict=True)
        return cls(net)

    def to(self, device: str | torch.device) -> VocosVocoder:
        """Move the network (the decoded wave still comes back on the mel's device)."""
        self.net.to(device)
        return self

    def _decode(self, mel: torch.Tensor) -> torch.Tensor:
        device = next(self.net.parameters()).device
        with torch.inference_mode():
            wave = self.net(mel.to(device))
        return wave.to(mel.device)


def _locate(path: Path) -> tuple[Path, Path]:
    """``(config.yaml, weights)`` for a folder or a weights file."""
    if not path.exists():
        raise VocoderError(
            f"vocoder path {path} does not exist; download charactr/vocos-mel-24khz "
            "(config.yaml + pytorch_model.bin) and set speech.vocoder_path to its folder"
        )
    if path.is_dir():
        candidates = [path / name for name in _WEIGHT_FILES] + sorted(path.glob("*.safetensors"))
        weights = next((p for p in candidates if p.is_file()), None)
        if weights is None:
            raise VocoderError(
                f"vocoder folder {path} has no weights: expected one of {_WEIGHT_FILES} "
                "or a *.safetensors file"
            )
        folder = path
    else:
        if path.suffix not in {".bin", ".pt", ".pth", ".safetensors"}:
            raise VocoderError(
                f"vocoder file {path} is not a checkpoint (.bin, .pt, .pth or .safetensors); "
                "pass the folder holding config.yaml and the weights"
            )
        weights, folder = path, path.parent
    config = folder / "config.yaml"
    if not config.is_file():
        raise VocoderError(
            f"no config.yaml next to {weights}; vocos publishes one with its weights"
        )
    return config, weights


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and safetensors errors have no common base
        raise VocoderError(f"cannot read vocoder weights {path}: {exc}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a Lightning training checkpoint
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise VocoderError(f"{path} is not a state dict of tensors")
    return state


def build_vocoder(
    name: VocoderName, path: str | Path | None = None, audio: AudioConfig | None = None
) -> Vocoder:
    """The vocoder ``speech.vocoder`` names, checked against the mel front end.

    Args:
        name: ``"griffin-lim"`` (no weights) or ``"vocos"``.
        path: the local Vocos folder or weights file (``speech.vocoder_path``).
        audio: the mel front end; the default ``AudioConfig()`` when not given.

    Raises:
        VocoderError: unknown name, ``vocos`` without a path, or a Vocos whose
            sample rate, hop or mel bins differ from ``audio``.
    """
    if audio is None:
        from dubops.config import AudioConfig

        audio = AudioConfig()
    if name == "griffin-lim":
        return GriffinLimVocoder(audio)
    if name != "vocos":
        raise VocoderError(f"unknown vocoder {name!r}; use 'griffin-lim' or 'vocos'")
    if path is None:
        raise VocoderError(
            "speech.vocoder is 'vocos' but speech.vocoder_path is not set; point it at a "
            "local charactr/vocos-mel-24khz folder or use --set speech.vocoder=griffin-lim"
        )
    vocoder = VocosVocoder.from_path(path)
    c = vocoder.net.config
    pairs = {
        "sample_rate": (c.sample_rate, audio.sample_rate),
        "hop_length": (c.hop_length, audio.hop_length),
        "n_mels": (c.n_mels, audio.n_mels),
    }
    wrong = [f"{k}: vocoder {a} vs audio {b}" for k, (a, b) in pairs.items() if a != b]
    if wrong:
        raise VocoderError(f"vocoder {path} does not fit the audio config ({'; '.join(wrong)})")
    return vocoder
