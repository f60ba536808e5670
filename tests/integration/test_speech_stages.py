"""Both speech stages end to end on the fixture corpus, through the CLI, then dubbing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from dubops.cli.main import app
from tests.fixtures.corpus import build_fixture_corpus

pytestmark = pytest.mark.slow

SMALL = [
    "-s",
    "speech.dit={dim: 64, depth: 2, heads: 2, dim_head: 32, text_dim: 32, conv_layers: 1,"
    " text_num_embeds: 128, mask_padding_keys: true}",
    "-s",
    "speech.controlnet.blocks=1",
    "-s",
    "speech.controlnet.visual_dim=32",
    "-s",
    "speech.duration={dim: 32, layers: 1, word_slots: true}",
    "-s",
    "speech.duration_refine={steps: 4, eval_every: 2}",
    "-s",
    "speech.sampler.nfe=4",
    "-s",
    "speech.pitch={enabled: true, dim: 16, layers: 1, refine_steps: 4, refine_eval_every: 2}",
    "-s",
    "audio.griffin_lim_iters=2",
]


def _stage(prefix: str, steps: int) -> list[str]:
    keys = {
        "total_steps": steps,
        "warmup_steps": 1,
        "save_every": 2,
        "eval_every": 2,
        "sample_every": 2,
        "log_every": 1,
        "frames_per_batch": 4000,
    }
    return [arg for k, v in keys.items() for arg in ("-s", f"speech.{prefix}.{k}={v}")]


def test_pretrain_resume_controlnet_and_dub(tmp_path):
    data = build_fixture_corpus(tmp_path / "corpus")
    pre, cn = tmp_path / "pre", tmp_path / "cn"
    tracking = [
        "-s",
        f"tracking.tracking_uri=sqlite:///{tmp_path}/mlruns.db",
        "-s",
        f"tracking.artifact_location={tmp_path}/art",
    ]
    runner = CliRunner()
    args = [
        "train",
        "dit-pretrain",
        "--data",
        str(data),
        "--out",
        str(pre),
        "--json",
        *SMALL,
        *tracking,
    ]
    first = runner.invoke(app, [*args, *_stage("pretrain", 2)])
    assert first.exit_code == 0, first.output
    # Resume to 4 steps: continues from step 2's checkpoint.
    second = runner.invoke(app, [*args, "--resume", *_stage("pretrain", 4)])
    assert second.exit_code == 0, second.output
    result = json.loads(second.stdout)
    assert result["step"] == 4
    assert (pre / "dit.safetensors").is_file() and (pre / "samples").is_dir()

    res = runner.invoke(
        app,
        [
            "train",
            "controlnet",
            "--data",
            str(data),
            "--pretrained",
            str(pre),
            "--out",
            str(cn),
            "--no-mlflow",
            *SMALL,
            *_stage("controlnet_training", 2),
        ],
    )
    assert res.exit_code == 0, res.output
    assert (cn / "dubbing.safetensors").is_file()
    refined = json.loads((cn / "stage.json").read_text())["duration_refine"]
    assert refined["steps"] == 4 and refined["onset_error_after"] <= refined["onset_error_before"]

    # More refinement of the finished folder, in place; 0 steps is a clear error.
    refine = ["train", "duration", "--model", str(cn), "--data", str(data), "--no-mlflow"]
    before = load_file(str(cn / "dubbing.safetensors"))
    res = runner.invoke(app, [*refine, "--json", *SMALL, "-s", "speech.duration_refine.steps=3"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["steps"] == 3
    # The export carries the refined predictor: new weights exactly when an update won.
    after = load_file(str(cn / "dubbing.safetensors"))
    changed = any(not torch.equal(before[k], after[k]) for k in before if k.startswith("duration."))
    assert changed == (json.loads(res.stdout)["best_step"] > 0)
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("duration."))
    assert json.loads((cn / "stage.json").read_text())["duration_refine"]["steps"] == 3
    res = runner.invoke(app, [*refine, *SMALL, "-s", "speech.duration_refine.steps=0"])
    assert res.exit_code == 2 and "duration_refine.steps" in res.output, res.output

    # The pitch head alone, in place: only `pitch.` weights may change.
    repitch = ["train", "pitch", "--model", str(cn), "--data", str(data), "--no-mlflow"]
    before = load_file(str(cn / "dubbing.safetensors"))
    res = runner.invoke(app, [*repitch, "--json", *SMALL, "-s", "speech.pitch.refine_steps=3"])
    assert res.exit_code == 0, res.output
    refined = json.loads(res.stdout)
    assert refined["steps"] == 3 and refined["val_loss_after"] <= refined["val_loss_before"]
    after = load_file(str(cn / "dubbing.safetensors"))
    changed = any(not torch.equal(before[k], after[k]) for k in before if k.startswith("pitch."))
    assert changed == (refined["best_step"] > 0)
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("pitch."))
    assert json.loads((cn / "stage.json").read_text())["pitch_refine"]["steps"] == 3
    # The folder now serves the refinement's val-fitted contour spread.
    served = json.loads((cn / "speech.json").read_text())["pitch"]["contour_scale"]
    assert served == round(refined["contour_spread"], 3)
    assert json.loads((cn / "stage.json").read_text())["contour_scale_fit"] == served
    res = runner.invoke(app, [*repitch, *SMALL, "-s", "speech.pitch.refine_steps=0"])
    assert res.exit_code == 2 and "pitch.refine_steps" in res.output, res.output

    dubbed = tmp_path / "dubbed"
    res = runner.invoke(
        app, ["dub", "--model", str(cn), "--data", str(data), "--out", str(dubbed), *SMALL]
    )
    assert res.exit_code == 0, res.output
    from dubops.audio import read_wav
    from dubops.data.datasets import load_manifest

    test = load_manifest(data, ["test_s1", "test_s2"])
    for row in test.itertuples():
        wave, rate = read_wav(dubbed / f"{row.clip_id}.wav")
        assert abs(len(wave) / rate - row.video_seconds) < 0.03
    # Another sampler seed (to average a score over) gives another take of the same slot.
    reseeded = tmp_path / "seed1"
    dub_one = ["dub", "--model", str(cn), "--data", str(data), "--max-clips", "1"]
    res = runner.invoke(app, [*dub_one, "--seed", "1", "--out", str(reseeded), *SMALL])
    assert res.exit_code == 0, res.output
    first = test.iloc[0].clip_id
    again, _ = read_wav(reseeded / f"{first}.wav")
    wave, _ = read_wav(dubbed / f"{first}.wav")
    assert len(again) == len(wave) and not np.array_equal(again, wave)


def test_controlnet_without_a_pretrained_run_is_a_clear_error(tmp_path):
    data = build_fixture_corpus(tmp_path / "corpus", n=6)
    res = CliRunner().invoke(
        app,
        [
            "train",
            "controlnet",
            "--data",
            str(data),
            "--pretrained",
            str(tmp_path / "nothing"),
            "--no-mlflow",
        ],
    )
    assert res.exit_code == 2
    assert "dit-pretrain" in res.output and "Traceback" not in res.output


def test_controlnet_trains_after_the_timbre_prompt_with_a_pitch_head(tmp_path):
    from dubops.config import load_config
    from dubops.data.datasets import PhonemeVocab
    from dubops.speech.data import ClipDataset

    data = build_fixture_corpus(tmp_path / "corpus", n=6)
    pre, cn = tmp_path / "pre", tmp_path / "cn"
    runner = CliRunner()
    common = ["--data", str(data), "--no-mlflow", *SMALL]
    res = runner.invoke(
        app, ["train", "dit-pretrain", "--out", str(pre), *common, *_stage("pretrain", 2)]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "train",
            "controlnet",
            "--pretrained",
            str(pre),
            "--out",
            str(cn),
            *common,
            *_stage("controlnet_training", 2),
            "-s",
            "speech.controlnet_training.context=prompt",
            "-s",
            "speech.pitch.enabled=true",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    weights = load_file(str(cn / "dubbing.safetensors"))
    assert any(k.startswith("pitch.") for k in weights)
    # Refined or not, the head's contour spread is fitted on val and served from the folder.
    stage = json.loads((cn / "stage.json").read_text())
    served = json.loads((cn / "speech.json").read_text())["pitch"]["contour_scale"]
    assert served == stage["contour_scale_fit"] > 0
    # The F0 targets are cached with the corpus, one file per manifest version.
    assert len(list((data / "features" / "pitch").glob("*.npz"))) == 1

    # It dubs with the head's contour: voiced and at the slot's length.
    dubbed = tmp_path / "dubbed"
    res = runner.invoke(
        app, ["dub", "--model", str(cn), "--data", str(data), "--out", str(dubbed), *SMALL]
    )
    assert res.exit_code == 0, res.output
    from dubops.audio import read_wav
    from dubops.data.datasets import load_manifest

    for row in load_manifest(data, ["test_s1", "test_s2"]).itertuples():
        wave, rate = read_wav(dubbed / f"{row.clip_id}.wav")
        assert abs(len(wave) / rate - row.video_seconds) < 0.03

    # The batches are budgeted on what the model reads: the prompt's frames and the clip's.
    config = load_config("tiny")
    vocab = PhonemeVocab.load(pre / "vocab.json")
    clips, _ = ClipDataset.train_val(data, config.audio, vocab, config.speech)
    prompted, _ = ClipDataset.train_val(data, config.audio, vocab, config.speech, "prompt")
    item = prompted[0]
    assert len(item["prompt_mel"]) > 0 and "prompt_mel" not in clips[0]
    assert prompted.lengths()[0] == clips.lengths()[0] + len(item["prompt_mel"])

    # The DiT pretrains by infilling only: another context is named with its fix.
    res = runner.invoke(
        app,
        [
            "train",
            "dit-pretrain",
            "--out",
            str(tmp_path / "pre2"),
            *common,
            *_stage("pretrain", 2),
            "-s",
            "speech.pretrain.context=prompt",
        ],
    )
    assert res.exit_code == 2 and "speech.pretrain.context=self" in res.output, res.output
