"""The compiled pipeline IR: the DAG's shape and the Kubernetes settings per step.

The YAML is read back as Kubeflow would read it (two documents: the pipeline spec and
its Kubernetes platform spec) and every expectation names the step it is about.
"""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from dubops.cli.main import app
from dubops.config import ConfigError, load_config
from dubops.pipelines.compile import compile_pipeline
from dubops.pipelines.settings import STEPS, TRAINING_STEPS

GPU_OVERRIDES = [
    "pipeline.cluster.gpu.steps={dit_pretrain: 2, controlnet_tune: 1, reasoner_sft: 1}",
    "pipeline.cluster.gpu.accelerator_type=nvidia.com/gpu",
    "pipeline.cluster.gpu.node_selector={nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}",
    "pipeline.cluster.gpu.tolerations=[{key: dedicated, operator: Equal, value: ml,"
    " effect: NoExecute}]",
    "pipeline.cluster.pvc=team-volume",
    "pipeline.cluster.mount_path=/data",
    "pipeline.cluster.resources={dit_pretrain: {cpu: '16', memory: 128G}}",
    "pipeline.image=registry.example/dubops:9.9",
]


def _task(step: str) -> str:
    return step.replace("_", "-")


def _compiled(tmp_path, preset: str, overrides: list[str] | None = None):
    config = load_config(preset, overrides=overrides)
    path = compile_pipeline(config, tmp_path / "training.yaml")
    spec, platform = yaml.safe_load_all(path.read_text())
    return config, spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_base_training_steps_get_gpu_node_selector_toleration_pvc_and_secrets(tmp_path):
    config, spec, k8s = _compiled(tmp_path, "base")
    cluster = config.pipeline.cluster
    assert set(cluster.gpu.steps) == set(TRAINING_STEPS)
    executors = spec["deploymentSpec"]["executors"]
    for step in TRAINING_STEPS:
        name = f"exec-{_task(step)}"
        accelerator = executors[name]["container"]["resources"]["accelerator"]
        assert accelerator["resourceType"] == "nvidia.com/gpu", step
        assert accelerator["resourceCount"] == "1", step
        assert k8s[name]["nodeSelector"]["labels"] == {
            "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"
        }, step
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in k8s[name][
            "tolerations"
        ], step
    for step in (*STEPS, "finalize_run"):
        name = f"exec-{_task(step)}"
        mounts = k8s[name]["pvcMount"]
        assert [(m["constant"], m["mountPath"]) for m in mounts] == [
            ("dubops-data", "/mnt/dubops")
        ], step
        secrets = {
            s["secretName"]: {k["envVar"]: k["secretKey"] for k in s["keyToEnv"]}
            for s in k8s[name]["secretAsEnv"]
        }
        assert secrets["mlflow-credentials"]["MLFLOW_TRACKING_PASSWORD"] == "password", step
        assert secrets["object-store-credentials"]["AWS_SECRET_ACCESS_KEY"] == (
            "secret_access_key"
        ), step
        if step not in TRAINING_STEPS:
            assert "accelerator" not in executors[name]["container"].get("resources", {}), step
            assert "nodeSelector" not in k8s[name] and "tolerations" not in k8s[name], step


def test_the_settings_come_from_the_config(tmp_path):
    _, spec, k8s = _compiled(tmp_path, "tiny", GPU_OVERRIDES)
    executors = spec["deploymentSpec"]["executors"]
    counts = {
        step: executors[f"exec-{_task(step)}"]["container"]
        .get("resources", {})
        .get("accelerator", {})
        .get("resourceCount")
        for step in STEPS
    }
    assert {s: c for s, c in counts.items() if c} == {
        "dit_pretrain": "2",
        "controlnet_tune": "1",
        "reasoner_sft": "1",
    }
    dit = k8s["exec-dit-pretrain"]
    assert dit["nodeSelector"]["labels"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert dit["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute"}
    ]
    assert dit["pvcMount"][0]["constant"] == "team-volume"
    assert dit["pvcMount"][0]["mountPath"] == "/data"
    resources = executors["exec-dit-pretrain"]["container"]["resources"]
    assert (resources["resourceCpuLimit"], resources["resourceMemoryLimit"]) == ("16", "128G")
    assert {e["container"]["image"] for e in executors.values()} == {"registry.example/dubops:9.9"}


def test_tiny_asks_for_no_gpu_and_installs_nothing(tmp_path):
    _, spec, k8s = _compiled(tmp_path, "tiny")
    for name, executor in spec["deploymentSpec"]["executors"].items():
        assert "accelerator" not in executor["container"].get("resources", {}), name
        assert "pip install" not in json.dumps(executor["container"]["command"]), name
        assert "nodeSelector" not in k8s[name], name


def test_packages_to_install_is_applied_to_every_step(tmp_path):
    package = "dubops @ git+https://example.org/dubops@v0.1.0"
    _, spec, _ = _compiled(
        tmp_path,
        "tiny",
        [f"pipeline.packages_to_install=['{package}']", "pipeline.image=python:3.11"],
    )
    for name, executor in spec["deploymentSpec"]["executors"].items():
        command = json.dumps(executor["container"]["command"])
        assert "pip install" in command and "git+https://example.org/dubops@v0.1.0" in command, name
        assert executor["container"]["image"] == "python:3.11", name


def test_dag_shape_gate_condition_exit_handler_and_no_kfp_cache(tmp_path):
    config, spec, _ = _compiled(tmp_path, "tiny")
    root = spec["root"]["dag"]["tasks"]
    assert set(root) == {"exit-handler-1", "finalize-run"}
    final = root["finalize-run"]
    assert final["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert final["inputs"]["parameters"]["status"] == {
        "taskFinalStatus": {"producerTask": "exit-handler-1"}
    }
    body = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    after = {name: set(task.get("dependentTasks", [])) for name, task in body.items()}
    assert after["validate-data"] == set()
    for first, then in [
        ("validate-data", "reasoner-sft"),
        ("validate-data", "dit-pretrain"),
        ("validate-data", "train-extractors"),
        ("reasoner-sft", "reasoner-mpo"),
        ("dit-pretrain", "controlnet-tune"),
        ("train-extractors", "build-library"),
        ("controlnet-tune", "graph-synthesizer"),
        ("build-library", "graph-synthesizer"),
        ("graph-synthesizer", "evaluate"),
        ("reasoner-mpo", "evaluate"),
        ("evaluate", "register-model"),
        ("register-model", "promotion-gate"),
    ]:
        assert first in after[then], f"{then} must wait for {first}"
    # the three branches do not wait for each other
    assert "dit-pretrain" not in after["reasoner-sft"] | after["train-extractors"]
    condition = body["condition-2"]
    assert "promotion-gate" in condition["dependentTasks"]
    assert condition["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--promotion-gate-Output'] == true"
    )
    assert set(spec["components"]["comp-condition-2"]["dag"]["tasks"]) == {"promote"}
    # Kubeflow's own cache is off: the steps cache on data version + config + inputs
    for name, task in {**body, "finalize-run": final}.items():
        if "componentRef" in task and not name.startswith("condition"):
            assert not task.get("cachingOptions", {}).get("enableCache", False), name
    default = spec["root"]["inputDefinitions"]["parameters"]["config_json"]["defaultValue"]
    assert json.loads(default) == json.loads(config.model_dump_json())


def test_cli_compile_and_its_errors(tmp_path):
    runner = CliRunner()
    out = tmp_path / "training.yaml"
    result = runner.invoke(app, ["pipeline", "compile", "--preset", "base", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "pipelineInfo" in out.read_text()
    result = runner.invoke(app, ["pipeline", "compile", "-o", str(tmp_path / "training.txt")])
    assert result.exit_code == 2 and "name the file *.yaml" in result.output
    result = runner.invoke(
        app, ["pipeline", "compile", "-o", str(out), "--set", "pipeline.cluster.gpu.steps={x: 1}"]
    )
    assert result.exit_code == 2 and "pipeline.cluster.gpu.steps" in result.output


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("pipeline.cluster.gpu.steps={dit_pretrian: 1}", "dit_pretrian"),
        ("pipeline.cluster.gpu.steps={dit_pretrain: -1}", "GPU counts must be >= 0"),
        ("pipeline.cluster.resources={evaluation: {cpu: '2'}}", "pipeline.cluster.resources"),
        ("pipeline.cluster.gpu.tolerations=[{key: a, operator: Equal}]", "needs a value"),
        ("pipeline.evaluate.max_clips=0", "pipeline.evaluate.max_clips"),
    ],
)
def test_bad_pipeline_settings_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field):
        load_config("tiny", overrides=[override])


def test_micro_has_the_tiny_shapes():
    tiny, micro = load_config("tiny"), load_config("micro")
    for section in (
        "video",
        "speech.text_mode",
        "speech.dit",
        "speech.controlnet",
        "speech.duration",
        "speech.lip_align",
        "speech.pitch.enabled",
        "speech.pitch.dim",
        "speech.pitch.layers",
        "speech.pitch.kernel",
        "speech.controlnet_training.context",
        "graph.training.context",
        "reasoning.model",
        "reasoning.vision",
        "reasoning.language",
        "reasoning.image_size",
        "reasoning.keyframes",
        "reasoning.motion",
        "graph.dim",
        "graph.heads",
        "graph.layers",
        "emotion.dim",
        "emotion.scene.frames",
        "emotion.face.crop",
        "emotion.text.hidden",
        "emotion.audio.channels",
        "library.k",
    ):
        a, b = tiny.model_dump(), micro.model_dump()
        for part in section.split("."):
            a, b = a[part], b[part]
        assert a == b, section
    assert micro.synth.clips < tiny.synth.clips
    assert micro.speech.pretrain.total_steps < tiny.speech.pretrain.total_steps
