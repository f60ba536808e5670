"""The training DAG (``training``) and what runs it: locally through kfp.local (``local``),
compiled for Kubeflow with per-step Kubernetes settings (``compile``, ``platform``) and
scheduled as a recurring run (``schedule``, ``cron``); settings in ``settings``.

Part of the `dubops` distribution (mapped as `dubops.pipelines`).
"""
