"""Vocoders: Griffin-Lim shapes, Vocos loading and parity with the vocos package."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from dubops.config import AudioConfig
from dubops.speech.vocoder import (
    GriffinLimVocoder,
    VocoderError,
    VocosVocoder,
    build_vocoder,
)
from tests.shims.torchaudio_shim import torchaudio_shim


def _vocos_config(dim: int, intermediate: int, layers: int, n_fft: int, hop: int, padding: str):
    """A config.yaml in the layout vocos publishes (charactr/vocos-mel-24khz)."""
    return {
        "feature_extractor": {
            "class_path": "vocos.feature_extractors.MelSpectrogramFeatures",
            "init_args": {
                "sample_rate": 24000,
                "n_fft": n_fft,
                "hop_length": hop,
                "n_mels": 100,
                "padding": padding,
            },
        },
        "backbone": {
            "class_path": "vocos.models.VocosBackbone",
            "init_args": {
                "input_channels": 100,
                "dim": dim,
                "intermediate_dim": intermediate,
                "num_layers": layers,
            },
        },
        "head": {
            "class_path": "vocos.heads.ISTFTHead",
            "init_args": {"dim": dim, "n_fft": n_fft, "hop_length": hop, "padding": padding},
        },
    }


def _reference(folder: Path, config: dict, fmt: str = "bin", seed: int = 0):
    """vocos's own model with random weights, saved as a published checkpoint folder."""
    with torchaudio_shim():
        from vocos import Vocos

        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
        model = Vocos.from_hparams(str(folder / "config.yaml")).eval()
    torch.manual_seed(seed)
    with torch.no_grad():  # vocos zero-inits biases; perturb everything that is learnt
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * (0.01 if name.startswith("head.out") else 0.05))
    state = model.state_dict()
    assert any(k.startswith("feature_extractor.mel_spec.") for k in state)  # as published
    if fmt == "bin":
        torch.save(state, folder / "pytorch_model.bin")
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    return model


def _mel(b: int = 2, n: int = 50, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 100, n, generator=g) * 2 - 5  # log-mel-like range


@pytest.mark.parametrize(("padding", "fmt"), [("center", "bin"), ("same", "safetensors")])
def test_vocos_matches_reference(tmp_path, padding, fmt):
    config = _vocos_config(64, 192, 3, 1024, 256, padding)
    ref = _reference(tmp_path / "vocos", config, fmt)
    ours = VocosVocoder.from_path(tmp_path / "vocos")
    mel = _mel()
    with torch.no_grad():
        expected = ref.decode(mel)
    got = ours.decode(mel)
    assert got.shape == expected.shape == (2, 49 * 256 if padding == "center" else 50 * 256)
    diff = (got - expected).abs().max().item()
    assert diff <= 1e-5, diff
    assert expected.abs().max() > 1e-2  # not trivially silent


def test_vocos_base_size_matches_reference(tmp_path):
    ref = _reference(tmp_path / "base", _vocos_config(512, 1536, 8, 1024, 256, "center"))
    ours = VocosVocoder.from_path(tmp_path / "base" / "pytorch_model.bin")
    mel = _mel(b=1, n=40)
    with torch.no_grad():
        expected = ref.decode(mel)
    assert (ours.decode(mel[0]) - expected).abs().max().item() <= 1e-5
    assert sum(p.numel() for p in ours.net.parameters()) == sum(
        p.numel() for n, p in ref.named_parameters() if not n.startswith("feature_extractor")
    )


def test_build_vocoder_checks_audio_and_paths(tmp_path):
    audio = AudioConfig()
    assert isinstance(build_vocoder("griffin-lim", audio=audio), GriffinLimVocoder)
    with pytest.raises(VocoderError, match="vocoder_path"):
        build_vocoder("vocos", audio=audio)
    with pytest.raises(VocoderError, match="unknown vocoder"):
        build_vocoder("hifigan", audio=audio)  # type: ignore[arg-type]
    with pytest.raises(VocoderError, match="does not exist"):
        build_vocoder("vocos", tmp_path / "nowhere", audio)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VocoderError, match="no weights"):
        build_vocoder("vocos", tmp_path / "empty", audio)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(VocoderError, match="not a checkpoint"):
        build_vocoder("vocos", tmp_path / "notes.txt", audio)

    folder = tmp_path / "hop200"
    _reference(folder, _vocos_config(32, 64, 1, 800, 200, "center"))
    with pytest.raises(VocoderError, match="hop_length: vocoder 200 vs audio 256"):
        build_vocoder("vocos", folder, audio)
    # A config that does not describe these weights is named, not silently half-loaded.
    (folder / "config.yaml").write_text(
        yaml.safe_dump(_vocos_config(32, 64, 2, 800, 200, "center"))
    )
    with pytest.raises(VocoderError, match="missing"):
        VocosVocoder.from_path(folder)
    (folder / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(VocoderError, match="cannot read"):
        VocosVocoder.from_path(folder)


def test_griffin_lim_decodes_batches():
    # (dubops.audio.griffin_lim spends ~2 s per call in its filter pseudo-inverse: one batch.)
    audio = AudioConfig(griffin_lim_iters=2)
    vocoder = build_vocoder("griffin-lim", audio=audio)
    mel = _mel(b=2, n=12)
    wave = vocoder.decode(mel)
    assert wave.shape == (2, 11 * audio.hop_length) and wave.dtype == torch.float32
    assert 0 < wave.abs().max() <= 1.0
    with pytest.raises(ValueError, match="transpose"):
        vocoder.decode(mel.transpose(1, 2))
