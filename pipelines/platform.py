"""Kubernetes settings per step (kfp-kubernetes), from ``pipeline.cluster``.

Every step mounts the PVC (corpus and artifact store) and gets the MLflow and
object-store credentials as environment variables from secrets; the steps listed in
``pipeline.cluster.gpu.steps`` get their GPU count, the accelerator type, the GPU
pool's node selector and tolerations; ``pipeline.cluster.resources`` sets CPU and
memory limits. KFP's own task cache is switched off: the steps cache themselves on
what they really depend on (data version, config slice, inputs), which a cluster's
cache (keyed on parameter values; the data folder's path stays the same when its
content changes) cannot see.

``kfp.local`` ignores these settings: a local run is the same pipeline.
"""

from __future__ import annotations

from typing import Any

from dubops.pipelines.settings import ClusterSettings


def apply_platform(tasks: dict[str, Any], cluster: ClusterSettings) -> None:
    """Apply the cluster settings to the pipeline's tasks (``{step name: task}``)."""
    from kfp import kubernetes

    for step, task in tasks.items():
        task.set_caching_options(False)
        kubernetes.mount_pvc(task, pvc_name=cluster.pvc, mount_path=cluster.mount_path)
        for secret in cluster.secrets:
            kubernetes.use_secret_as_env(
                task,
                secret_name=secret.secret,
                secret_key_to_env={key: env for env, key in secret.env.items()},
                optional=secret.optional,
            )
        limits = cluster.resources.get(step)
        if limits is not None and limits.cpu:
            task.set_cpu_limit(limits.cpu)
        if limits is not None and limits.memory:
            task.set_memory_limit(limits.memory)
        gpus = cluster.gpu.steps.get(step, 0)
        if gpus > 0:
            _gpu(task, gpus, cluster)


def _gpu(task: Any, count: int, cluster: ClusterSettings) -> None:
    from kfp import kubernetes

    gpu = cluster.gpu
    task.set_accelerator_type(gpu.accelerator_type).set_accelerator_limit(count)
    for label, value in gpu.node_selector.items():
        kubernetes.add_node_selector(task, label_key=label, label_value=value)
    for t in gpu.tolerations:
        kubernetes.add_toleration(
            task, key=t.key, operator=t.operator, value=t.value, effect=t.effect
        )
