"""Kubeflow Pipelines components, one per training-pipeline step; thin adapters that parse inputs,
call the dubops library, log to MLflow and write typed output artifacts.

Part of the `dubops` distribution (mapped as `dubops.components`); filled by later issues.
"""
