"""Training checkpoints that resume exactly, with weights any loader can read.

Layout under a run's ``checkpoints/`` folder::

    step_00001000/model.safetensors   the training weights
    step_00001000/ema.safetensors     the EMA weights (a full model state dict)
    step_00001000/state.pt            optimizer, scheduler, step, data position, RNG, config
    latest                            the name of the newest complete step folder

Weights are safetensors (no pickle, memory-mapped loads); the rest is a torch
file of tensors and plain containers only, so it loads with
``weights_only=True``. A step folder is written under a temporary name and
renamed into place, and ``latest`` is replaced the same way, so a crash
mid-save leaves the previous checkpoint as the latest. nanoGPT and F5-TTS keep
RNG state beside the optimizer for the same reason we do: resuming N -> 2N must
draw the same masks, noise and dropout as a straight 2N run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dubops.fileio import replace_dir
from dubops.speech.ema import EMA

logger = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
STATE_FILE = "state.pt"
LATEST = "latest"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def capture_rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), NumPy and Python RNG states, as weights_only-safe values."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Run a block on fixed seeds and leave the global RNGs as they were.

    Evaluation and sampling draw masks and noise; isolating them keeps the
    training stream identical whether or not (and how often) they run, and
    gives every validation pass the same draws.
    """
    saved = capture_rng_state()
    seed_everything(seed)
    try:
        yield
    finally:
        restore_rng_state(saved)


def _for_safetensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, and no two tensors sharing memory (safetensors refuses tied weights)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in state.items():
        t = value.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[key] = t
    return out


def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def list_checkpoints(root: Path) -> list[Path]:
    """Complete step folders under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found) if (p / STATE_FILE).is_file()]


def latest_checkpoint(root: str | Path) -> Path | None:
    """The folder ``latest`` names, else the highest step folder, else None."""
    root = Path(root)
    pointer = root / LATEST
    if pointer.is_file():
        target = root / pointer.read_text().strip()
        if (target / STATE_FILE).is_file():
            return target
        logger.warning("%s names %s, which is incomplete; using the newest step", pointer, target)
    found = list_checkpoints(root)
    return found[-1] if found else None


def save_checkpoint(
    root: str | Path,
    step: int,
    model: nn.Module,
    ema: EMA,
    state: dict[str, Any],
    keep_last: int | None = None,
) -> Path:
    """Write ``root/step_<step>`` atomically, point ``latest`` at it, prune old ones.

    Args:
        root: the run's checkpoint folder.
        step: optimizer updates done; names the folder.
        model: the unwrapped model (not its DDP wrapper).
        ema: its weight average; written as a full model state dict.
        state: everything else the trainer needs to resume (tensors and plain
            containers only), stored in ``state.pt`` with the EMA update count.
        keep_last: keep this many newest step folders (None keeps all).

    Returns:
        the step folder.
    """
    from safetensors.torch import save_file

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = root / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    meta = {"format": "pt", "step": str(step)}
    save_file(_for_safetensors(model.state_dict()), tmp / MODEL_FILE, metadata=meta)
    save_file(_for_safetensors(ema.model_state_dict(model)), tmp / EMA_FILE, metadata=meta)
    torch.save({**state, "step": step, "ema_num_updates": ema.num_updates}, tmp / STATE_FILE)
    replace_dir(tmp, final)
    pointer_tmp = root / f".{LATEST}.tmp"
    pointer_tmp.write_text(final.name)
    os.replace(pointer_tmp, root / LATEST)
    if keep_last is not None:
        for old in list_checkpoints(root)[:-keep_last]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    return final


def load_weights(
    path: str | Path, model: nn.Module, use_ema: bool = True, strict: bool = True
) -> nn.Module:
    """Load a step folder's EMA (or training) weights into ``model``, for evaluation or export."""
    from safetensors.torch import load_file

    device = next(model.parameters()).device
    weights = load_file(Path(path) / (EMA_FILE if use_ema else MODEL_FILE), device=str(device))
    model.load_state_dict(weights, strict=strict)
    return model


def load_checkpoint(path: str | Path, model: nn.Module, ema: EMA) -> dict[str, Any]:
    """Restore ``model`` and ``ema`` from a step folder; return the rest of its state.

    The returned dict holds ``optimizer``, ``scheduler``, ``step`` and whatever
    else the trainer saved; applying them is the trainer's job.
    """
    from safetensors.torch import load_file

    path = Path(path)
    load_weights(path, model, use_ema=False)
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    device = next(iter(ema.shadow.values())).device if ema.shadow else "cpu"
    ema.load_state_dict(
        {
            "shadow": load_file(path / EMA_FILE, device=str(device)),
            "num_updates": state["ema_num_updates"],
        }
    )
    return state
