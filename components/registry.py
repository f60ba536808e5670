"""The registry's steps: ``register_model`` (challenger), ``promotion_gate`` and ``promote``.

Thin adapters over :mod:`dubops.registry`. Their outputs live outside the store (in
the MLflow registry), so a stored record is reused only while the registry still
agrees with it: the registered version must still exist; the gate's decision holds
while the champion is the one it compared with (or the challenger it promoted); a
promotion, once made for a key, is not repeated (a later rollback sticks).
"""

from __future__ import annotations

import json
from typing import Any

from dubops.components.runtime import StepContext, StepResult, run_step
from dubops.components.store import StepRecord
from dubops.config import DubOpsConfig

CHAMPION = "champion"


def _registry_client(config: DubOpsConfig) -> Any:
    import mlflow

    from dubops.tracking import configure_tracking

    configure_tracking(config.tracking)
    return mlflow.MlflowClient()


def champion_version(config: DubOpsConfig) -> int | None:
    """The version the ``champion`` alias points at, or None."""
    from mlflow.exceptions import MlflowException

    client = _registry_client(config)
    try:
        found = client.get_model_version_by_alias(config.registry.model_name, CHAMPION)
    except MlflowException:
        return None
    return int(found.version)


def _version_exists(record: StepRecord, config: DubOpsConfig) -> bool:
    from mlflow.exceptions import MlflowException

    client = _registry_client(config)
    try:
        client.get_model_version(config.registry.model_name, str(record.values["version"]))
    except (MlflowException, KeyError):
        return False
    return True


def _gate_still_holds(record: StepRecord, config: DubOpsConfig) -> bool:
    now = champion_version(config)
    return now in (record.values.get("champion"), record.values.get("challenger"))


def _register(ctx: StepContext) -> StepResult:
    from dubops.registry.bundle import assemble_bundle
    from dubops.registry.gate import evaluation_tags
    from dubops.registry.model_registry import register_bundle

    evaluation = json.loads(ctx.input("evaluation").read_text())
    bundle = assemble_bundle(
        ctx.out_dir / "bundle",
        reasoner_dir=ctx.input("reasoner"),
        speech_dir=ctx.input("graph"),
        extractors_dir=ctx.input("extractors"),
        library_dir=ctx.input("library"),
        data_dir=ctx.data_dir,
        drift_reference=ctx.input("drift_reference"),
    )
    version = register_bundle(
        ctx.config,
        bundle,
        metrics=evaluation["metrics"],
        baselines=evaluation["baselines"],
        run_id=ctx.tracker.run_id,
        tags={
            "dubops.pipeline_run_id": ctx.parent_run_id,
            "dubops.data_version": ctx.data_version,
            # The gate compares a champion and a challenger only on the same test set.
            **evaluation_tags(evaluation["splits"], evaluation["clips"]),
        },
    )
    ctx.tracker.set_tags({"dubops.registered_version": version})
    return StepResult(exports={"bundle": "bundle"}, values={"version": int(version)})


def run_register_model(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    corpus: Any,
    reasoner: Any,
    graph: Any,
    extractors: Any,
    library: Any,
    evaluation: Any,
    drift_reference: Any,
    bundle: Any,
) -> int:
    """Bundle the trained parts, register them as the challenger; return the version."""
    outcome = run_step(
        "register_model",
        config_json=config_json,
        store_dir=store_dir,
        parent_run_id=parent_run_id,
        body=_register,
        inputs={
            "corpus": corpus,
            "reasoner": reasoner,
            "graph": graph,
            "extractors": extractors,
            "library": library,
            "evaluation": evaluation,
            "drift_reference": drift_reference,
        },
        outputs={"bundle": bundle},
        still_valid=_version_exists,
    )
    return int(outcome.record.values["version"])


def _gate(ctx: StepContext, version: int) -> StepResult:
    from dataclasses import asdict

    from dubops.fileio import write_json
    from dubops.registry.gate import run_gate

    decision = run_gate(ctx.config, challenger=version)
    write_json(ctx.out_dir / "decision.json", asdict(decision))
    return StepResult(
        exports={"decision": "decision.json"},
        metrics={"gate_passed": float(decision.passed)},
        values={
            "passed": bool(decision.passed),
            "reason": decision.reason,
            "challenger": decision.challenger,
            "champion": decision.champion,
        },
    )


def run_promotion_gate(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    corpus: Any,
    bundle: Any,
    version: int,
    decision: Any,
) -> bool:
    """Compare the challenger with the champion (or the baselines); return whether it passed."""
    outcome = run_step(
        "promotion_gate",
        config_json=config_json,
        store_dir=store_dir,
        parent_run_id=parent_run_id,
        body=lambda ctx: _gate(ctx, version),
        inputs={"corpus": corpus, "bundle": bundle},
        outputs={"decision": decision},
        still_valid=_gate_still_holds,
        extra_key={"version": version},
    )
    return bool(outcome.record.values["passed"])


def _promote(ctx: StepContext, version: int) -> StepResult:
    from dubops.registry.promotion import promote

    decision = json.loads(ctx.input("decision").read_text())
    # Promote only over the champion the gate compared with: a promotion in between
    # makes this a conflict (rerun the pipeline: the gate decides again), not a silent swap.
    promote(ctx.config, version, reason=decision["reason"], expected_champion=decision["champion"])
    ctx.tracker.set_tags({"dubops.champion": version})
    return StepResult(exports={}, values={"champion": version})


def run_promote(
    config_json: str, store_dir: str, parent_run_id: str, corpus: Any, version: int, decision: Any
) -> None:
    """Point the champion alias at the version the gate passed (its reason from ``decision``)."""
    run_step(
        "promote",
        config_json=config_json,
        store_dir=store_dir,
        parent_run_id=parent_run_id,
        body=lambda ctx: _promote(ctx, version),
        inputs={"corpus": corpus, "decision": decision},
        extra_key={"version": version},
    )
