"""The part of the configuration each step reads: the config slice of its cache key.

A slice that is too wide only retrains a step for nothing; one that is too narrow
reuses stale outputs, so each entry lists whole sections unless a section clearly
splits (the speech stages' own training settings, MPO's apart from SFT's).
``pipeline.stage_minutes`` is not in any slice: a safety limit fails a step or lets it
finish, it never changes what the step makes.
``tests/unit/test_pipeline_store.py`` checks that every path exists in the config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dubops.config import DubOpsConfig
from dubops.fileio import sha256_file

STEP_SLICES: dict[str, tuple[str, ...]] = {
    "validate_data": ("audio",),
    "reasoner_sft": (
        "reasoning.model",
        "reasoning.pretrained_path",
        "reasoning.vision",
        "reasoning.language",
        "reasoning.lora",
        "reasoning.image_size",
        "reasoning.keyframes",
        "reasoning.motion",
        "reasoning.motion_gain",
        "reasoning.max_new_tokens",
        "reasoning.bf16",
        "reasoning.gradient_checkpointing",
        "reasoning.warmup",
        "reasoning.sft",
    ),
    "reasoner_mpo": ("reasoning",),
    "dit_pretrain": (
        "audio",
        "speech.text_mode",
        "speech.dit",
        "speech.flow",
        "speech.sampler",
        "speech.pretrain",
        "speech.pretrained_dit",
    ),
    "controlnet_tune": (
        "audio",
        "video",
        "speech.flow",
        "speech.sampler",
        "speech.controlnet",
        "speech.duration",
        "speech.controlnet_training",
        "speech.pretrained_controlnet",
    ),
    "train_extractors": ("audio", "video", "emotion"),
    "build_library": ("audio", "emotion", "library"),
    # The ControlNet's speech settings come with its folder (an input): not from the config.
    "graph_synthesizer": ("audio", "video", "graph", "library"),
    "evaluate": (
        "audio",
        "speech.sampler",
        "speech.vocoder",
        "speech.vocoder_path",
        "reasoning.max_new_tokens",
        "library",
        "pipeline.evaluate",
    ),
    # The registry steps act on a store outside ours: its address is part of the key.
    "register_model": ("registry", "tracking"),
    "promotion_gate": ("registry", "tracking"),
    "promote": ("registry", "tracking"),
    "finalize_run": (),
}


# Settings that name a file whose content, not only its path, shapes the step's output.
CONTENT_SETTINGS = ("speech.pretrained_dit", "speech.pretrained_controlnet")


def config_slice(config: DubOpsConfig, step: str) -> dict[str, Any]:
    """``{dotted path: value}`` of the settings ``step`` reads.

    A warm-start checkpoint enters as its path and its SHA-256, so a retrained base
    at the same path is a new key.
    """
    data = config.model_dump(mode="json")
    out: dict[str, Any] = {}
    for path in STEP_SLICES[step]:
        node: Any = data
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"config slice of {step}: no setting {path!r}")
            node = node[part]
        out[path] = node
        if path in CONTENT_SETTINGS and node and Path(node).is_file():
            out[f"{path}#sha256"] = sha256_file(node)
    return out
