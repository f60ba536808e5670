"""Kubeflow pipeline DAGs (CoT SFT -> MPO -> DiT pretrain -> ControlNet -> graph synthesizer ->
evaluate -> register -> gate), their compilation, local runs and schedules.

Part of the `dubops` distribution (mapped as `dubops.pipelines`); filled by later issues.
"""
