"""Kubeflow Pipelines components, one per training-pipeline step; thin adapters that parse
inputs, call the dubops library, log to MLflow and write typed output artifacts.

``steps`` holds the components (:func:`steps.make_components` puts them on one image);
each calls its step's adapter (``validate``, ``reasoner``, ``speech``, ``library``,
``graph``, ``evaluate``, ``registry``, ``finalize``) through :func:`runtime.run_step`,
which owns the config, the cache (``store``, ``slices``) and the MLflow runs
(``parent_run``). Part of the `dubops` distribution (mapped as `dubops.components`).
"""
