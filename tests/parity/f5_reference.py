"""Import the f5-tts reference model code without its training-time imports.

``f5_tts.model/__init__`` imports the trainer (wandb, datasets, accelerate) and
``modules.py`` imports torchaudio, which cannot load beside our torch. The model
code we compare against needs neither, so this registers a bare ``f5_tts.model``
package (its ``__init__`` skipped) and a stub torchaudio for the duration of the
import. Test-only: nothing in ``dubops`` imports f5-tts.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any


def _stub_torchaudio() -> types.ModuleType:
    stub = types.ModuleType("torchaudio")
    stub.transforms = types.SimpleNamespace(MelSpectrogram=None)  # used only by MelSpec
    return stub


def load_reference() -> Any:
    """The reference modules as a namespace: ``DiT``, ``CFM``, ``utils``; None if absent."""
    spec = importlib.util.find_spec("f5_tts")
    if spec is None or not spec.submodule_search_locations:
        return None
    stub = None
    if "f5_tts.model.backbones.dit" not in sys.modules:
        root = next(iter(spec.submodule_search_locations))
        package = types.ModuleType("f5_tts.model")
        package.__path__ = [f"{root}/model"]
        sys.modules.setdefault("f5_tts.model", package)
        if "torchaudio" not in sys.modules:
            stub = sys.modules["torchaudio"] = _stub_torchaudio()
    try:
        dit = importlib.import_module("f5_tts.model.backbones.dit")
        cfm = importlib.import_module("f5_tts.model.cfm")
        utils = importlib.import_module("f5_tts.model.utils")
    finally:
        # The f5 modules keep their reference; others (transformers probes
        # find_spec("torchaudio")) must not see a stub without a spec.
        if stub is not None and sys.modules.get("torchaudio") is stub:
            del sys.modules["torchaudio"]
    return types.SimpleNamespace(DiT=dit.DiT, CFM=cfm.CFM, utils=utils)
