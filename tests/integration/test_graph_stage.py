"""The graph-synthesizer stage end to end: a real library build, training, resume, dubbing.

The corpus is the real synthetic generator's (``small_synthetic_corpus``); the
library is built by the real build (Parquet, Feast apply, Milvus Lite) from
stand-in vectors clustered by emotion (``feature_store.synthetic``), so the test
needs no trained extractors. The DiT and ControlNet are tiny and trained for two
steps each; the point is the plumbing, not the sound.
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from dubops.cli.main import app
from dubops.config import load_config
from tests.fixtures.dubbing_stages import SPEECH as SMALL

pytestmark = pytest.mark.slow


def _steps(prefix: str, steps: int) -> list[str]:
    keys = {
        "total_steps": steps,
        "warmup_steps": 1,
        "save_every": 2,
        "eval_every": 2,
        "sample_every": 2,
        "log_every": 1,
        "frames_per_batch": 3000,
        "torch_threads": 1,
    }
    return [f"{prefix}.{k}={v}" for k, v in keys.items()]


@pytest.fixture(scope="module")
def trained(small_synthetic_corpus, tmp_path_factory):
    """(corpus, library, controlnet folder, config overrides) shared by the tests."""
    from dubops.data.datasets import load_manifest
    from dubops.feature_store.build import build_library
    from dubops.feature_store.synthetic import clustered_vectors
    from dubops.speech.stages import pretrain_dit, tune_controlnet

    root = tmp_path_factory.mktemp("graph_stage")
    data = small_synthetic_corpus
    overrides = [*SMALL, *_steps("speech.pretrain", 2), *_steps("speech.controlnet_training", 2)]
    config = load_config("tiny", overrides=overrides)
    library = root / "library"
    vectors = clustered_vectors(load_manifest(data), dim=config.emotion.dim)
    build_library(config, data, library, vectors=vectors)
    pretrain_dit(config, data, root / "pre")
    tune_controlnet(config, data, root / "pre", root / "cn")
    return data, library, root / "cn", overrides


def test_train_resume_and_dub_with_retrieval(trained, tmp_path):
    from dubops.audio import read_wav
    from dubops.data.datasets import load_manifest
    from dubops.emotion.footage_batch import FootageTensors
    from dubops.emotion.graph_stage import train_graph
    from dubops.feature_store.retrieval import FootageLibrary

    data, library, cn, overrides = trained
    out = tmp_path / "graph"
    config = load_config("tiny", overrides=[*overrides, *_steps("graph.training", 2)])
    first = train_graph(config, data, cn, library, out)
    assert first.step == 2 and (out / "graph.safetensors").is_file()
    cache = sorted((out / "footage_cache").glob("*.safetensors"))
    assert len(cache) == 1
    # Resume to 4 updates: from step 2's checkpoint, retrieval from the cache.
    config4 = load_config("tiny", overrides=[*overrides, *_steps("graph.training", 4)])
    second = train_graph(config4, data, cn, library, out, resume=True)
    assert second.step == 4 and sorted((out / "footage_cache").glob("*")) == cache

    stage = json.loads((out / "stage.json").read_text())
    with FootageLibrary.open(library) as lib:
        assert stage["library_version"] == lib.info.version
        footage, version = FootageTensors.load(cache[0])
        assert version == lib.info.version
        # No training clip retrieved itself: no hit equals its own vector.
        own = lib.clip_vectors(footage.clip_ids)
        for m, name in enumerate(("scene", "face", "text")):
            mine = torch.from_numpy(own[name])[:, None]  # (c, 1, d)
            assert footage.hit_mask[:, m].all()
            assert not torch.isclose(footage.indirect[:, m], mine).all(-1).any()
    manifest = load_manifest(data, ["train", "val"])
    assert set(footage.clip_ids) == set(manifest["clip_id"])

    runner = CliRunner()
    # The test library holds injected vectors (no extractors): the footage oracle queries
    # with them; without it the served path asks for the extractors.
    args = ["dub", "--model", str(out), "--data", str(data), "--max-clips", "2"]
    args += ["--oracle", "footage"]
    sets = [arg for o in SMALL for arg in ("-s", o)]
    missing = runner.invoke(app, [*args, "--out", str(tmp_path / "x"), *sets])
    assert missing.exit_code == 2 and "--library" in " ".join(missing.output.split())
    dubbed = tmp_path / "dubbed"
    res = runner.invoke(app, [*args, "--library", str(library), "--out", str(dubbed), *sets])
    assert res.exit_code == 0, res.output
    test = load_manifest(data, ["test_s1", "test_s2"]).head(2)
    for row in test.itertuples():
        wave, rate = read_wav(dubbed / f"{row.clip_id}.wav")
        assert abs(len(wave) / rate - row.video_seconds) < 0.03


def test_cli_ablation_run_is_recorded_and_loadable(trained, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    from dubops.speech.dubbing_model import DubbingModel
    from dubops.speech.generator import SpeechGenerator

    data, library, cn, overrides = trained
    out = tmp_path / "nograph"
    # The stage trains at this rate and with these parts held, and records both.
    drop = ["graph.conclusion_drop_prob=0.5", "graph.frozen=[pitch, controlnet]"]
    sets = [arg for o in [*overrides, *_steps("graph.training", 2), *drop] for arg in ("-s", o)]
    rates = []
    train_step = DubbingModel.training_loss

    def recording(model, batch):
        rates.append(model.conclusion_drop_prob)
        return train_step(model, batch)

    monkeypatch.setattr(DubbingModel, "training_loss", recording)
    res = CliRunner().invoke(
        app,
        [
            "train",
            "graph",
            "--data",
            str(data),
            "--controlnet",
            str(cn),
            "--library",
            str(library),
            "--out",
            str(out),
            "--ablation",
            "no-graph",
            "--no-mlflow",
            "--json",
            *sets,
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["step"] == 2
    recorded = json.loads((out / "graph.json").read_text())
    assert recorded["ablation"] == "no-graph" and recorded["conclusion_drop_prob"] == 0.5
    assert recorded["frozen"] == ["controlnet", "pitch"]
    before, after = (
        load_file(str(cn / "dubbing.safetensors")),
        load_file(str(out / "dubbing.safetensors")),
    )
    held = [k for k in before if k.startswith("controlnet.")]
    assert held and all(torch.equal(before[k], after[k]) for k in held)
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("fusion."))
    assert json.loads((out / "stage.json").read_text())["pitch_refine"]["steps"] == 4
    assert rates and set(rates) == {0.5}
    generator = SpeechGenerator.from_dir(out)
    assert generator.needs_footage and len(generator.model.emotion_module.graph.encoders) == 0

    bad = CliRunner().invoke(
        app,
        [
            "train",
            "graph",
            "--controlnet",
            str(cn),
            "--library",
            str(library),
            "--data",
            str(data),
            "--ablation",
            "no-everything",
            "--no-mlflow",
        ],
    )
    assert bad.exit_code == 2 and "no-graph" in " ".join(bad.output.split())


def test_a_missing_library_names_the_build_command(trained, tmp_path):
    data, _, cn, overrides = trained
    sets = [arg for o in overrides for arg in ("-s", o)]
    res = CliRunner().invoke(
        app,
        [
            "train",
            "graph",
            "--data",
            str(data),
            "--controlnet",
            str(cn),
            "--library",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "g"),
            "--no-mlflow",
            *sets,
        ],
    )
    assert res.exit_code == 2 and "dubops library build" in " ".join(res.output.split())


def test_a_controlnet_without_a_pitch_head_gets_one_in_the_graph_stage(trained, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from dubops.speech.generator import SpeechGenerator

    data, library, cn, overrides = trained
    old = tmp_path / "old_cn"  # a ControlNet trained before pitch heads existed
    shutil.copytree(cn, old, ignore=shutil.ignore_patterns("checkpoints", "samples"))
    speech = json.loads((old / "speech.json").read_text())
    speech["pitch"]["enabled"] = False
    (old / "speech.json").write_text(json.dumps(speech))
    weights = load_file(str(old / "dubbing.safetensors"))
    save_file(
        {k: v for k, v in weights.items() if not k.startswith("pitch.")},
        str(old / "dubbing.safetensors"),
    )
    assert SpeechGenerator.from_dir(old).model.pitch is None

    out = tmp_path / "graph"
    sets = [arg for o in [*overrides, *_steps("graph.training", 2)] for arg in ("-s", o)]
    args = ["train", "graph", "--data", str(data), "--controlnet", str(old)]
    res = CliRunner().invoke(
        app, [*args, "--library", str(library), "--out", str(out), "--no-mlflow", *sets]
    )
    assert res.exit_code == 0, res.output
    generator = SpeechGenerator.from_dir(out)
    assert generator.model.pitch is not None and generator.speech.pitch.enabled

    # `dubops train pitch` on a graph folder reads the footage its stage cached, and
    # changes the head alone; a folder without a head is told how to get one.
    from safetensors.torch import load_file as load

    before, graph_before = (
        load(str(out / "dubbing.safetensors")),
        load(str(out / "graph.safetensors")),
    )
    repitch = ["train", "pitch", "--data", str(data), "--no-mlflow", "--json", *sets]
    res = CliRunner().invoke(
        app, [*repitch, "--model", str(out), "-s", "speech.pitch.refine_steps=2"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["steps"] == 2
    after = load(str(out / "dubbing.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("pitch."))
    graph_after = load(str(out / "graph.safetensors"))
    assert all(torch.equal(graph_before[k], graph_after[k]) for k in graph_before)
    res = CliRunner().invoke(
        app, [*repitch, "--model", str(old), "-s", "speech.pitch.refine_steps=2"]
    )
    assert res.exit_code == 2 and "pitch.enabled" in " ".join(res.output.split()), res.output
