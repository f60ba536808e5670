"""Loading finished speech stages for inference: the DiT folder and the dubbing model.

Inference (:mod:`dubops.inference`) needs these and nothing of training, so they
live apart from :mod:`dubops.speech.stages` (the stages' training runs), which
imports them from here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dubops.data.datasets import PhonemeVocab
from dubops.speech.cfm import FlowMatching
from dubops.speech.data import MODEL_NOTEXT
from dubops.speech.dit import DiT
from dubops.speech.pretrained import CheckpointError
from dubops.speech.settings import PitchConfig, SpeechConfig

DIT_FILE = "dit.safetensors"
DUBBING_FILE = "dubbing.safetensors"
VOCAB_FILE, SPEECH_FILE = "vocab.json", "speech.json"  # beside every stage's weights


def build_flow(speech: SpeechConfig) -> FlowMatching:
    """The stage-2.1 model for a speech config (random init, or a local F5 checkpoint)."""
    if speech.pretrained_dit:
        from dubops.speech.pretrained import load_dit

        backbone = load_dit(speech.pretrained_dit, speech.dit)
    else:
        backbone = DiT(speech.dit)
    notext = MODEL_NOTEXT if speech.text_mode == "aligned" else None
    return FlowMatching(backbone, speech.flow, notext_id=notext)


def load_flow(pretrain_dir: str | Path) -> tuple[FlowMatching, PhonemeVocab, SpeechConfig]:
    """A finished ``dit-pretrain`` folder -> (flow model with EMA weights, vocab, config)."""
    from safetensors.torch import load_file

    root = Path(pretrain_dir)
    weights = _required(root / DIT_FILE, "dit-pretrain")
    speech = SpeechConfig.model_validate_json((root / SPEECH_FILE).read_text())
    flow = build_flow(speech.model_copy(update={"pretrained_dit": None}))
    flow.backbone.load_state_dict(load_file(str(weights)), strict=True)
    return flow.eval(), PhonemeVocab.load(root / VOCAB_FILE), speech


def load_dubbing_model(
    run_dir: str | Path, add_pitch: PitchConfig | None = None
) -> tuple[Any, PhonemeVocab, SpeechConfig]:
    """A ``controlnet`` (or ``graph``) run folder -> (DubbingModel, vocab, speech config).

    A graph folder's ``graph.safetensors`` becomes the model's emotion module.
    ``add_pitch`` (an enabled :class:`PitchConfig`) gives a folder without a pitch
    head a new one, for a stage that trains on from it (the graph stage).
    """
    from dubops.emotion.conditioner import is_graph_dir, load_conditioner
    from dubops.speech.dubbing_model import DubbingModel

    root = Path(run_dir)
    weights = _required(root / DUBBING_FILE, "controlnet")
    stage = json.loads((root / "stage.json").read_text())
    # A relative DiT folder is relative to this one (a copied bundle keeps its parts together).
    flow, vocab, _ = load_flow(root / stage["pretrain_dir"])
    speech = SpeechConfig.model_validate_json((root / SPEECH_FILE).read_text())
    new: tuple[str, ...] = ()
    if add_pitch is not None and add_pitch.enabled and not speech.pitch.enabled:
        speech = speech.model_copy(update={"pitch": add_pitch})
        new = ("pitch.",)
    cn = speech.controlnet
    emotion_module = (
        load_conditioner(root, cn.visual_dim, cn.emotion_dim) if is_graph_dir(root) else None
    )
    model = DubbingModel(flow, speech, len(vocab), emotion_module=emotion_module)
    load_stage_weights(model, weights, new)
    return model, vocab, speech


def load_stage_weights(model: Any, weights: str | Path, new: tuple[str, ...] = ()) -> None:
    """Load a ``dubbing.safetensors`` (the stage-2.2 parts) into ``model``, strictly.

    The frozen DiT and a graph's emotion module live in their own files, so only
    their keys may be missing, and those of parts a training stage adds (``new``
    prefixes, e.g. a pitch head the warm start lacks).
    """
    from safetensors.torch import load_file

    missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    stray = [k for k in missing if not k.startswith(("flow.", "emotion_module.", *new))]
    if unexpected or stray:
        raise CheckpointError(f"{weights} does not fit this build: {unexpected or stray}")


def _required(weights: Path, stage: str) -> Path:
    """``weights``, or a CheckpointError naming the command that makes them."""
    if not weights.is_file():
        raise CheckpointError(
            f"{weights} is missing; run `dubops train {stage} --out {weights.parent}` first"
        )
    return weights
