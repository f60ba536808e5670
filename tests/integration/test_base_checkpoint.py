"""The shipped base checkpoint: export, integrity check and warm starts of both speech stages.

Real micro stage folders (``tests.fixtures.dubbing_stages``) play the base; the demo's
``configs/demo.yaml`` uses the same two settings on ``models/tiny/``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.fixtures.dubbing_stages import build_stages, micro_stage_config


@pytest.fixture(scope="module")
def stages(small_synthetic_corpus, tmp_path_factory):
    return build_stages(small_synthetic_corpus, tmp_path_factory.mktemp("stages"))


@pytest.fixture(scope="module")
def base(stages, tmp_path_factory) -> Path:
    from dubops.speech.base_checkpoint import export_base

    out = tmp_path_factory.mktemp("base") / "tiny"
    export_base(stages.pretrain, stages.controlnet, stages.corpus, out, ["dubops train ..."])
    return out


def test_export_records_hashes_and_halves_the_weights(base, stages):
    from dubops.speech.base_checkpoint import verify_base

    record = verify_base(base)
    assert record is not None and record["commands"] == ["dubops train ..."]
    dit = record["stages"]["dit"]  # one run, so its total is its own minutes
    assert dit["step"] > 0 and dit["parts"] == 1 and dit["minutes_total"] == dit["minutes"]
    assert set(record["sha256"]) == {"dit.safetensors", "dubbing.safetensors", "vocab.json",
                                     "speech.json"}  # fmt: skip
    shipped, trained = (
        load_file(str(base / "dit.safetensors")),
        load_file(str(stages.pretrain / "dit.safetensors")),
    )
    assert all(v.dtype == torch.float16 for v in shipped.values() if v.is_floating_point())
    for name, value in trained.items():
        assert torch.allclose(shipped[name].float(), value, atol=1e-3, rtol=1e-3), name


def test_a_changed_file_is_refused_with_the_fix(base, tmp_path):
    from dubops.speech.base_checkpoint import verify_base
    from dubops.speech.pretrained import CheckpointError

    copy = tmp_path / "tiny"
    shutil.copytree(base, copy)
    (copy / "vocab.json").write_text(json.dumps({"symbols": ["<pad>", "a"]}))
    with pytest.raises(CheckpointError, match=r"differs from the shipped base.*git checkout"):
        verify_base(copy)


def test_both_speech_stages_warm_start_from_the_base(base, stages, tmp_path):
    """The DiT keeps the base's phoneme ids and starts from its weights; the ControlNet
    stage starts from the base's stage-2.2 weights (a near-zero learning rate leaves them)."""
    from dubops.data.datasets import PhonemeVocab
    from dubops.speech.stages import pretrain_dit, tune_controlnet

    config = micro_stage_config(
        f"speech.pretrained_dit={base / 'dit.safetensors'}",
        f"speech.pretrained_controlnet={base / 'dubbing.safetensors'}",
        "speech.pretrain.lr=1e-12",
        "speech.controlnet_training.lr=1e-12",
        "speech.duration_refine.steps=0",
        "speech.pitch.refine_steps=0",  # its own lr would move the head
    )
    dit = pretrain_dit(config, stages.corpus, tmp_path / "dit")
    assert (
        PhonemeVocab.load(tmp_path / "dit" / "vocab.json").symbols
        == PhonemeVocab.load(base / "vocab.json").symbols
    )
    tuned, shipped = load_file(dit.weights), load_file(str(base / "dit.safetensors"))
    for name, value in shipped.items():
        assert torch.allclose(tuned[name], value.float(), atol=1e-6), name

    cn = tune_controlnet(config, stages.corpus, tmp_path / "dit", tmp_path / "cn")
    tuned, shipped = load_file(cn.weights), load_file(str(base / "dubbing.safetensors"))
    assert set(shipped) <= set(tuned)
    for name, value in shipped.items():
        assert torch.allclose(tuned[name], value.float(), atol=1e-6), name


def test_a_dit_for_another_phoneme_set_is_refused(base, stages, tmp_path):
    from dubops.speech.pretrained import CheckpointError
    from dubops.speech.stages import pretrain_dit

    copy = tmp_path / "tiny"
    shutil.copytree(base, copy)
    (copy / "base.json").unlink()  # an unrecorded checkpoint: only the vocabulary is checked
    (copy / "vocab.json").write_text(json.dumps({"symbols": ["<pad>", "<unk>", "<notext>", "a"]}))
    config = micro_stage_config(f"speech.pretrained_dit={copy / 'dit.safetensors'}")
    with pytest.raises(CheckpointError, match="phonemes its vocabulary lacks"):
        pretrain_dit(config, stages.corpus, tmp_path / "dit")
