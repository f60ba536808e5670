"""Exponential moving average of a model's trainable weights (the weights that ship).

F5-TTS samples and releases its EMA weights (``ema_pytorch``, beta 0.9999).
With ``warmup`` the decay after ``t`` updates is ``min(decay, (1 + t) / (10 + t))``
(TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``), so the
average follows the model early on instead of staying near the random init
for ~1/(1 - decay) updates.

Only parameters that require grad are averaged: a frozen backbone (the
ControlNet stage) is its own average. :meth:`EMA.model_state_dict` fills the
frozen parts and buffers from the model, so the result loads into the model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


class EMA:
    """Shadow copies (float32) of ``model``'s trainable parameters."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = True) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {
            name: p.detach().float().clone()
            for name, p in model.named_parameters()
            if p.requires_grad
        }

    def decay_at(self, num_updates: int) -> float:
        """The decay applied by the update that follows ``num_updates`` updates."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + num_updates) / (10 + num_updates))

    def _params(self, model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
        params = dict(model.named_parameters())
        return [(self.shadow[name], params[name]) for name in self.shadow]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """``shadow <- d * shadow + (1 - d) * param``; call after each optimizer step."""
        weight = 1.0 - self.decay_at(self.num_updates)
        for shadow, param in self._params(model):
            shadow.lerp_(param.detach().float(), weight)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's trainable parameters with the averages."""
        for shadow, param in self._params(model):
            param.copy_(shadow)

    @contextlib.contextmanager
    def applied_to(self, model: nn.Module) -> Iterator[nn.Module]:
        """Swap the averages in for evaluation or sampling; the training weights return after."""
        backup = {
            name: p.detach().clone() for name, p in model.named_parameters() if name in self.shadow
        }
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name in backup:
                        p.copy_(backup[name])

    def model_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's state dict with the averages in place of the trainable parameters."""
        params = dict(model.named_parameters())
        by_param = {id(params[name]): shadow for name, shadow in self.shadow.items()}
        state = {}
        # keep_vars gives the Parameter objects, so tied names get the average too.
        for key, value in model.state_dict(keep_vars=True).items():
            shadow = by_param.get(id(value))
            state[key] = value.detach() if shadow is None else shadow.to(value.dtype)
        return state

    def state_dict(self) -> dict[str, Any]:
        return {"num_updates": self.num_updates, "shadow": dict(self.shadow)}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (or ``shadow`` as a full model state dict)."""
        missing = [name for name in self.shadow if name not in state["shadow"]]
        if missing:
            raise ValueError(f"EMA state lacks {len(missing)} parameter(s), e.g. {missing[0]}")
        for name, shadow in self.shadow.items():
            shadow.copy_(state["shadow"][name])
        self.num_updates = int(state["num_updates"])

    def to(self, device: torch.device | str) -> EMA:
        self.shadow = {k: v.to(device) for k, v in self.shadow.items()}
        return self
