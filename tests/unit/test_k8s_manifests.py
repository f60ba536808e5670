"""The Kubernetes deployment, checked offline: every overlay renders with Kustomize, every
manifest passes its schema (core kinds strict, custom resources against their vendored CRD
with unknown fields refused), every pod our policy, checkov finds nothing unjustified, the
monitoring manifests match ``monitoring/``, and every image agrees with ``images.yaml``.

Each check is also shown to fail on a broken manifest, so a pass means something.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dubops.deploy import monitoring_manifests, policy
from dubops.deploy.checkov_run import run_checkov
from dubops.deploy.images import compiled_images, image_names
from dubops.deploy.layout import DeployError, InfraLayout
from dubops.deploy.pod_specs import images, pod_specs
from dubops.deploy.render import render
from dubops.deploy.validate import ManifestValidator

LAYOUT = InfraLayout.find()
OVERLAYS = ["local", "gpu", "prod", "knative"]
NAMES = image_names(LAYOUT)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {overlay: render(LAYOUT, overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="module")
def validator() -> ManifestValidator:
    return ManifestValidator(LAYOUT.crds)


def _one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def test_the_overlays_are_the_documented_ones():
    assert LAYOUT.overlays() == sorted(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_the_whole_platform(rendered, overlay):
    docs = rendered[overlay]
    kinds = {d["kind"] for d in docs}
    assert {
        "Namespace",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "InferenceService",
        "ServiceMonitor",
        "PrometheusRule",
        "Job",
    } <= kinds
    for name in ("dubops-mlflow", "dubops-milvus", "dubops-feast", "dubops-bento"):
        _one(docs, "Deployment", name)
    assert all(d["metadata"].get("namespace") == "dubops" for d in docs if d["kind"] != "Namespace")
    dashboards = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"].get("labels", {}).get("grafana_dashboard")
    ]
    assert [d["metadata"]["labels"]["grafana_dashboard"] for d in dashboards] == ["1"]
    assert ("PyTorchJob" in kinds) == (overlay != "local")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_manifest_passes_its_schema(rendered, validator, overlay):
    assert validator.check_all(rendered[overlay]) == []


def test_the_crd_schemas_refuse_unknown_and_mistyped_fields(rendered, validator):
    docs = rendered["gpu"]
    cases = [
        ("InferenceService", ["spec", "predictor"], "minReplica", 1),
        ("ServiceMonitor", ["spec", "endpoints", 0], "intervall", "15s"),
        ("PrometheusRule", ["spec", "groups", 0, "rules", 0], "expresion", "up"),
        ("PyTorchJob", ["spec", "runPolicy"], "suspended", True),
        ("Deployment", ["spec", "template", "spec", "containers", 0], "imagePullPolcy", "x"),
    ]
    for kind, path, field, value in cases:
        doc = copy.deepcopy(next(d for d in docs if d["kind"] == kind))
        node = doc
        for key in path:
            node = node[key]
        node[field] = value
        problems = validator.check(doc)
        assert problems and field in problems[0].message, (kind, problems)
    isvc = copy.deepcopy(_one(docs, "InferenceService"))
    isvc["spec"]["predictor"]["minReplicas"] = "two"
    assert any("minReplicas" in p.path for p in validator.check(isvc))


def test_a_kind_without_a_schema_is_a_problem(validator):
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert "no schema" in validator.check(doc)[0].message


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_passes_our_policy(rendered, overlay):
    assert policy.check_all(rendered[overlay]) == []
    # The policy reaches inside the custom resources too.
    where = {w for d in rendered[overlay] for w, _ in pod_specs(d)}
    assert "spec.predictor" in where


def test_the_policy_names_each_breach(rendered):
    isvc = copy.deepcopy(_one(rendered["prod"], "InferenceService"))
    container = isvc["spec"]["predictor"]["containers"][0]
    container["image"] = "ghcr.io/dubops/dubops-serving:latest"
    del container["resources"]["limits"]["memory"]
    container["securityContext"]["readOnlyRootFilesystem"] = False
    del container["readinessProbe"]
    isvc["spec"]["predictor"]["securityContext"]["runAsNonRoot"] = False
    messages = " | ".join(p.message for p in policy.check_policy(isvc))
    for expected in ("not pinned", "memory limit", "root filesystem", "readinessProbe", "root"):
        assert expected in messages
    assert not policy.pinned("python") and not policy.pinned("registry:5000/app")
    assert policy.pinned("registry:5000/app:1.2") and policy.pinned("a/b@sha256:00")


def test_checkov_passes_and_every_skip_has_its_reason(tmp_path, rendered):
    for overlay, docs in rendered.items():
        (tmp_path / f"{overlay}.yaml").write_text(yaml.safe_dump_all(docs))
    manifests = run_checkov(tmp_path, "kubernetes")
    dockerfile = run_checkov(LAYOUT.dockerfile, "dockerfile")
    for report in (manifests, dockerfile):
        assert report.failed == []
        assert report.passed > 0
        assert all(reason.strip() for _, _, reason in report.skipped), report.skipped
    assert {check for check, _, _ in manifests.skipped} <= {"CKV_K8S_43", "CKV_K8S_35"}


def test_checkov_fails_a_privileged_root_pod(tmp_path, rendered):
    job = copy.deepcopy(_one(rendered["local"], "Job"))
    pod = job["spec"]["template"]["spec"]
    pod["securityContext"] = {"runAsUser": 0}
    pod["containers"][0]["securityContext"] = {"privileged": True}
    pod["containers"][0]["image"] = "ghcr.io/dubops/dubops:latest"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(job))
    failed = {check for check, _, _ in run_checkov(tmp_path, "kubernetes").failed}
    assert {"CKV_K8S_16", "CKV_K8S_14"} <= failed  # privileged; image tag latest


def test_monitoring_manifests_are_generated_from_monitoring(rendered):
    assert monitoring_manifests.stale(LAYOUT) == []
    rules = yaml.safe_load(LAYOUT.rules_file.read_text())
    deployed = _one(rendered["prod"], "PrometheusRule")
    assert deployed["spec"]["groups"] == rules["groups"]
    config_map = _one(rendered["prod"], "ConfigMap", "dubops-grafana-dashboard")
    dashboard = json.loads(LAYOUT.dashboard_file.read_text())
    assert json.loads(config_map["data"]["dubops.json"]) == dashboard


def test_an_edited_rule_makes_the_manifest_stale_until_regenerated(tmp_path):
    copy_root = tmp_path / "checkout"
    shutil.copytree(LAYOUT.root / "infra", copy_root / "infra")
    shutil.copytree(LAYOUT.root / "monitoring" / "rules", copy_root / "monitoring" / "rules")
    shutil.copytree(
        LAYOUT.root / "monitoring" / "dashboards", copy_root / "monitoring" / "dashboards"
    )
    layout = InfraLayout.find(copy_root)
    rules = layout.rules_file
    rules.write_text(rules.read_text().replace("[5m]", "[10m]", 1))
    assert monitoring_manifests.stale(layout) == [monitoring_manifests.RULE_FILE]
    assert monitoring_manifests.write(layout) == [monitoring_manifests.RULE_FILE]
    assert monitoring_manifests.stale(layout) == []


def test_the_alert_rules_read_the_scrape_job_the_service_monitors_set(rendered):
    assert 'job="dubops"' in LAYOUT.rules_file.read_text()
    for monitor in (d for d in rendered["prod"] if d["kind"] == "ServiceMonitor"):
        relabel = monitor["spec"]["endpoints"][0]["relabelings"]
        assert {"action": "replace", "targetLabel": "job", "replacement": "dubops"} in relabel


def test_compiled_pipeline_servers_and_dockerfile_agree_on_the_images(rendered, tmp_path):
    from dubops.config import load_config
    from dubops.pipelines.compile import compile_pipeline

    targets = {
        line.split(" AS ")[1].strip()
        for line in LAYOUT.dockerfile.read_text().splitlines()
        if line.startswith("FROM ") and " AS " in line
    }
    assert set(NAMES) <= targets
    for preset in ("tiny", "base"):
        compiled = compile_pipeline(load_config(preset), tmp_path / "p.yaml").read_text()
        documents = [d for d in yaml.safe_load_all(compiled) if d]
        assert compiled_images(documents) == {NAMES["training-cpu"]}, preset
    for overlay, docs in rendered.items():
        serving = NAMES["serving" if overlay == "local" else "serving-cuda"]
        assert images(_one(docs, "InferenceService")) == [serving]
        assert images(_one(docs, "Deployment", "dubops-bento")) == [serving]
        assert images(_one(docs, "Deployment", "dubops-mlflow")) == [NAMES["training-cpu"]]
        if overlay != "local":
            job = _one(docs, "PyTorchJob")
            assert set(images(job)) == {NAMES["training-cuda"]}


def test_serving_pods_drain_and_run_one_worker(rendered):
    for overlay, docs in rendered.items():
        bento = _one(docs, "Deployment", "dubops-bento")["spec"]["template"]["spec"]
        isvc = _one(docs, "InferenceService")
        predictor = isvc["spec"]["predictor"]
        # The grace period covers the longest job (30 min) and a sync request (300 s).
        assert bento["terminationGracePeriodSeconds"] >= 1800
        assert predictor["terminationGracePeriodSeconds"] >= predictor["timeout"]
        assert "preStop" in bento["containers"][0]["lifecycle"]
        assert not any("--workers" in a for a in predictor["containers"][0]["args"])
        mode = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
        if overlay == "knative":
            assert mode == "Serverless" and predictor["canaryTrafficPercent"] == 10
        else:
            assert mode == "RawDeployment" and "preStop" in predictor["containers"][0]["lifecycle"]
        gpus = predictor["containers"][0]["resources"]["limits"].get("nvidia.com/gpu")
        assert (gpus is None) == (overlay == "local")


def test_the_pytorch_job_runs_the_trainer_under_torchrun_and_starts_suspended(rendered):
    job = _one(rendered["gpu"], "PyTorchJob")
    assert job["spec"]["runPolicy"]["suspend"] is True
    for role in ("Master", "Worker"):
        container = job["spec"]["pytorchReplicaSpecs"][role]["template"]["spec"]["containers"][0]
        assert container["command"] == ["torchrun"]
        assert container["args"][:4] == ["--no-python", "dubops", "train", "dit-pretrain"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == job["spec"]["nprocPerNode"]


def test_unknown_overlay_and_missing_checkout_are_clear_errors(tmp_path):
    with pytest.raises(DeployError, match="choose one of gpu, knative, local, prod"):
        LAYOUT.overlay("staging")
    with pytest.raises(DeployError, match="--root"):
        InfraLayout.find(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "dubops.cli.main", "deploy", "render", "--overlay", "staging"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "choose one of" in result.stderr


def test_render_matches_kubectl_kustomize(tmp_path):
    out = tmp_path / "gpu.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "dubops.cli.main", "deploy", "render", "-o", "gpu", "--out", out],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    kubectl = Path(sys.executable).parent / "kubectl"
    direct = subprocess.run(
        [kubectl, "kustomize", LAYOUT.k8s / "overlays" / "gpu"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.read_text() == direct.stdout
