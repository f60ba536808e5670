"""Load published F5-TTS checkpoints (``.safetensors`` or ``.pt``) into our DiT.

F5's trainer saves the EMA model as ``ema_model_state_dict`` with keys
``ema_model.transformer.<name>`` plus ema-pytorch's ``initted`` / ``step``; the
released ``.safetensors`` hold the same keys flat, and the raw model sits under
``model_state_dict`` as ``transformer.<name>``. Mel front-end buffers
(``mel_spec.*``) are not weights of the backbone. Everything else must match:
the load is strict, and ``.pt`` files are read with ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dubops.errors import DubOpsError
from dubops.speech.dit import DiT, DiTConfig

_NOT_WEIGHTS = ("initted", "step")


class CheckpointError(DubOpsError, ValueError):
    """A checkpoint that is missing, unreadable or does not fit the configured DiT."""


def read_state(path: str | Path, use_ema: bool = True) -> dict[str, torch.Tensor]:
    """The backbone's state dict from an F5-layout checkpoint, prefixes removed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass a local .safetensors or .pt")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        raw: dict = load_file(str(path))
    elif path.suffix in {".pt", ".pth", ".ckpt"}:
        try:
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"cannot read {path} with weights_only=True: {exc}") from None
        key = "ema_model_state_dict" if use_ema and "ema_model_state_dict" in raw else None
        key = key or ("model_state_dict" if "model_state_dict" in raw else None)
        raw = raw[key] if key else raw
    else:
        raise CheckpointError(f"checkpoint {path}: expected .safetensors or .pt, got {path.suffix}")
    state = {}
    for name, value in raw.items():
        if name in _NOT_WEIGHTS or not torch.is_tensor(value):
            continue
        name = name.removeprefix("ema_model.").removeprefix("module.")
        if name.startswith("mel_spec."):
            continue
        state[name.removeprefix("transformer.")] = value
    return state


def load_dit(path: str | Path, config: DiTConfig, use_ema: bool = True) -> DiT:
    """Build the DiT from ``config`` and load ``path`` strictly.

    Raises:
        CheckpointError: naming the missing / unexpected / mis-shaped parameters.
    """
    model = DiT(config)
    state = read_state(path, use_ema)
    expected = model.state_dict()
    shapes = [
        f"{k}: checkpoint {tuple(v.shape)} vs config {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    ]
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if shapes or missing or unexpected:
        detail = "; ".join(
            part
            for part in (
                f"shape mismatch: {shapes[:3]}" if shapes else "",
                f"missing: {missing[:5]}" if missing else "",
                f"unexpected: {unexpected[:5]}" if unexpected else "",
            )
            if part
        )
        raise CheckpointError(
            f"checkpoint {path} does not fit the configured DiT ({detail}); "
            "check speech.dit (dim, depth, heads, text_dim, text_num_embeds, conv_layers)"
        )
    model.load_state_dict(state, strict=True)
    return model
