"""Training-pipeline settings: pydantic only, so loading a config never imports kfp.

The ``pipeline`` section of ``DubOpsConfig``; it lives in the library's config so the
config never imports its orchestrator (``dubops.pipelines.settings`` re-exports it).

One place decides how every step runs: the container image and how the package gets
into it (``image`` + ``packages_to_install``, applied to every component), where the
persistent artifact store is, what the evaluation step scores, and what each step asks
of a Kubernetes cluster (GPUs, node selector, tolerations, the PVC, secrets as env).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from dubops.config.section import Section

# The pipeline's steps in DAG order; step names are the Kubeflow task names (with "-").
STEPS: tuple[str, ...] = (
    "validate_data",
    "reasoner_sft",
    "reasoner_mpo",
    "dit_pretrain",
    "controlnet_tune",
    "train_extractors",
    "build_library",
    "graph_synthesizer",
    "evaluate",
    "register_model",
    "promotion_gate",
    "promote",
)
# The steps that train a network: the ones that get a GPU on a cluster.
TRAINING_STEPS: tuple[str, ...] = (
    "reasoner_sft",
    "reasoner_mpo",
    "dit_pretrain",
    "controlnet_tune",
    "graph_synthesizer",
)


def _check_steps(names: list[str] | dict[str, int], field: str) -> None:
    unknown = sorted(set(names) - set(STEPS))
    if unknown:
        raise ValueError(f"{field}: unknown step(s) {unknown}; the steps are {list(STEPS)}")


class Toleration(Section):
    """A Kubernetes toleration (``kubernetes.add_toleration``)."""

    key: str
    operator: Literal["Equal", "Exists"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = "NoSchedule"

    @model_validator(mode="after")
    def _value_needs_equal(self) -> Toleration:
        if self.operator == "Equal" and self.value is None:
            raise ValueError(f"toleration {self.key!r}: operator Equal needs a value")
        return self


class SecretEnv(Section):
    """A Kubernetes secret exposed as environment variables: ``env`` maps ENV_VAR -> key."""

    secret: str = Field(description="secret name in the pipeline's namespace")
    env: dict[str, str] = Field(description="environment variable -> key in the secret")
    optional: bool = Field(False, description="start the step even when the secret is absent")


class GpuSettings(Section):
    """What the training steps ask for on a cluster (kfp's accelerator + kfp-kubernetes)."""

    steps: dict[str, int] = Field(
        default_factory=dict,
        description="step -> GPU count; tiny trains on CPUs, so none by default",
    )
    accelerator_type: str = Field(
        "nvidia.com/gpu", description="the resource name the cluster schedules GPUs by"
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="node labels of the GPU pool (e.g. the GPU product)"
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="taints of the GPU pool the training pods tolerate"
    )

    @field_validator("steps")
    @classmethod
    def _known_steps(cls, steps: dict[str, int]) -> dict[str, int]:
        _check_steps(steps, "pipeline.cluster.gpu.steps")
        bad = {k: v for k, v in steps.items() if v < 0}
        if bad:
            raise ValueError(f"pipeline.cluster.gpu.steps: GPU counts must be >= 0, got {bad}")
        return steps


class Resources(Section):
    """CPU and memory limits of a step's pod (Kubernetes quantities, e.g. "4", "16G")."""

    cpu: str | None = None
    memory: str | None = None


class ClusterSettings(Section):
    """What ``dubops pipeline compile`` writes for Kubeflow (ignored by local runs)."""

    pvc: str = Field("dubops-data", description="PVC that holds the corpus and the store")
    mount_path: str = Field("/mnt/dubops", description="where every step mounts the PVC")
    data_dir: str = Field(
        "/mnt/dubops/data/tiny", description="default corpus folder of a cluster run (on the PVC)"
    )
    store_dir: str = Field(
        "/mnt/dubops/pipeline", description="default artifact store of a cluster run (on the PVC)"
    )
    secrets: list[SecretEnv] = Field(
        default_factory=lambda: [
            SecretEnv(
                secret="mlflow-credentials",
                env={
                    "MLFLOW_TRACKING_USERNAME": "username",
                    "MLFLOW_TRACKING_PASSWORD": "password",
                },
            ),
            SecretEnv(
                secret="object-store-credentials",
                env={
                    "AWS_ACCESS_KEY_ID": "access_key_id",
                    "AWS_SECRET_ACCESS_KEY": "secret_access_key",
                    "MLFLOW_S3_ENDPOINT_URL": "endpoint_url",
                },
            ),
        ],
        description="secrets every step gets as env: MLflow and object-store credentials",
    )
    gpu: GpuSettings = Field(default_factory=GpuSettings)
    resources: dict[str, Resources] = Field(
        default_factory=dict, description="step -> CPU/memory limits (steps not listed: none)"
    )

    @field_validator("resources")
    @classmethod
    def _known_resource_steps(cls, resources: dict[str, Resources]) -> dict[str, Resources]:
        _check_steps(list(resources), "pipeline.cluster.resources")
        return resources


class EvaluateSettings(Section):
    """The pipeline's evaluate step: which clips, which scorers (``dubops eval``'s options)."""

    splits: list[str] = Field(default_factory=lambda: ["test_s1", "test_s2"])
    max_clips: int | None = Field(None, gt=0, description="the first N clips of the splits")
    asr: str = Field("sphinx", description="sphinx, sphinx-general or whisper:/local/path")
    mos: bool = Field(True, description="DNSMOS (the slowest metric)")
    workers: int = Field(2, ge=1, description="scoring processes")
    reason_batch_size: int = Field(8, gt=0, description="clips per reasoner generate call")
    dub_batch_size: int = Field(
        8, gt=0, description="clips per DubbingPipeline.dub_many call (one sampler batch)"
    )
    oracles: list[Literal["conclusion", "footage", "both"]] = Field(
        default_factory=lambda: ["conclusion", "footage"],
        description="oracle rows beside the served path: the ground-truth conclusion, the "
        "library's stored footage vectors, or both (the gate always scores the served path)",
    )
    torch_threads: int = Field(1, ge=1, description="torch CPU threads for dubbing and reasoning")


class ScheduleSettings(Section):
    """Defaults of ``dubops pipeline schedule`` (a KFP recurring run)."""

    cron: str = Field("0 0 3 * * *", description="6 fields: s m h dom mon dow (03:00 daily)")
    experiment: str = Field("dubops-retraining", description="KFP experiment of the runs")
    max_concurrency: int = Field(1, ge=1, description="runs of the schedule at the same time")
    catchup: bool = Field(False, description="backfill every missed interval after a pause")


class PipelineConfig(Section):
    """The ``pipeline`` section of ``DubOpsConfig``."""

    name: str = Field("dubops-training", description="pipeline name in Kubeflow and MLflow")
    image: str = Field(
        "ghcr.io/dubops/dubops:0.1.0",
        description="container image of every step; it must hold the dubops package "
        "(or list how to install it in packages_to_install)",
    )
    packages_to_install: list[str] = Field(
        default_factory=list,
        description="pip requirements installed at step start on a cluster (e.g. "
        "'dubops @ git+https://...'); local runs use the running environment instead",
    )
    pip_index_urls: list[str] | None = Field(None, description="pip indexes for those packages")
    store: str = Field(
        "outputs/pipeline",
        description="local artifact store: <store>/<step>/<cache key>/ (dubops pipeline run --out)",
    )
    stage_minutes: float | None = Field(
        None,
        gt=0,
        description="safety limit of every training step, replacing each stage's max_minutes: "
        "a step still short of its updates after this wall time fails (budgets are updates, "
        "so a busy machine trains the same model, later); None: the stages' own limits",
    )
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
