"""The Kubeflow components, one per pipeline step.

Each function here is the whole component: Kubeflow copies its source into the
container command (a lightweight Python component), so it only imports the step's
adapter from the installed package and calls it. :func:`make_components` applies the
one image / install setting (``pipeline.image``, ``pipeline.packages_to_install``) to
every component.

No ``from __future__ import annotations`` here: kfp reads the annotations as types.
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output


def validate_data(
    config_json: str,
    data_dir: str,
    store_dir: str,
    parent_run_id: str,
    job_id: str,
    corpus: Output[Dataset],
) -> str:
    """Great Expectations over the corpus; returns the pipeline's parent MLflow run id."""
    from dubops.components.validate import run_validate_data

    return run_validate_data(config_json, data_dir, store_dir, parent_run_id, job_id, corpus)


def reasoner_sft(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    corpus: Input[Dataset],
    reasoner: Output[Model],
):
    """Stage 1.1: chain-of-thought SFT of the reasoner."""
    from dubops.components.reasoner import run_reasoner_sft

    run_reasoner_sft(config_json, store_dir, parent_run_id, corpus, reasoner)


def reasoner_mpo(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    corpus: Input[Dataset],
    sft: Input[Model],
    reasoner: Output[Model],
):
    """Stage 1.2: mixed preference optimisation from the SFT reasoner."""
    from dubops.components.reasoner import run_reasoner_mpo

    run_reasoner_mpo(config_json, store_dir, parent_run_id, corpus, sft, reasoner)


def dit_pretrain(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    corpus: Input[Dataset],
    dit: Output[Model],
):
    """Stage 2.1: flow-matching pretraining of the DiT."""
    from dubops.components.speech import run_dit_pretrain

    run_dit_pretrain(config_json, store_dir, parent_run_id, corpus, dit)


def controlnet_tune(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    corpus: Input[Dataset],
    dit: Input[Model],
    controlnet: Output[Model],
):
    """Stage 2.2: the ControlNet, its conditions and the duration predictor."""
    from dubops.components.speech import run_controlnet_tune

    run_controlnet_tune(config_json, store_dir, parent_run_id, corpus, dit, controlnet)


def train_extractors(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    corpus: Input[Dataset],
    extractors: Output[Model],
):
    """The scene, face, text and audio emotion extractors of the footage library."""
    from dubops.components.library import run_train_extractors

    run_train_extractors(config_json, store_dir, parent_run_id, corpus, extractors)


def build_library(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    corpus: Input[Dataset],
    extractors: Input[Model],
    library: Output[Dataset],
):
    """The Reference Footage Library (Parquet, Feast, Milvus Lite)."""
    from dubops.components.library import run_build_library

    run_build_library(config_json, store_dir, parent_run_id, corpus, extractors, library)


def graph_synthesizer(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    corpus: Input[Dataset],
    controlnet: Input[Model],
    library: Input[Dataset],
    graph: Output[Model],
):
    """The progressive emotion graph trained with the ControlNet."""
    from dubops.components.graph import run_graph_synthesizer

    run_graph_synthesizer(config_json, store_dir, parent_run_id, corpus, controlnet, library, graph)


def evaluate(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    corpus: Input[Dataset],
    reasoner: Input[Model],
    graph: Input[Model],
    extractors: Input[Model],
    library: Input[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
    evaluation: Output[Artifact],
    drift_reference: Output[Artifact],
):
    """Dub the test clips through the served path (and the oracles); score them beside
    the baselines; profile the held-out clips as the drift reference."""
    from dubops.components.evaluate import run_evaluate

    run_evaluate(
        config_json,
        store_dir,
        parent_run_id,
        corpus,
        reasoner,
        graph,
        extractors,
        library,
        metrics,
        report,
        evaluation,
        drift_reference,
    )


def register_model(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    corpus: Input[Dataset],
    reasoner: Input[Model],
    graph: Input[Model],
    extractors: Input[Model],
    library: Input[Dataset],
    evaluation: Input[Artifact],
    drift_reference: Input[Artifact],
    bundle: Output[Model],
) -> int:
    """Assemble the dubbing bundle and register it as the challenger; returns the version."""
    from dubops.components.registry import run_register_model

    return run_register_model(
        config_json,
        store_dir,
        parent_run_id,
        corpus,
        reasoner,
        graph,
        extractors,
        library,
        evaluation,
        drift_reference,
        bundle,
    )


def promotion_gate(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    corpus: Input[Dataset],
    bundle: Input[Model],
    version: int,
    decision: Output[Artifact],
) -> bool:
    """The challenger against the champion (or the baselines) on the gated metrics.

    Returns whether it passed (one plain output: kfp.local's dsl.If reads only a
    component's single ``Output``); the table and the reason are in ``decision``.
    """
    from dubops.components.registry import run_promotion_gate

    return run_promotion_gate(
        config_json, store_dir, parent_run_id, corpus, bundle, version, decision
    )


def promote(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    corpus: Input[Dataset],
    version: int,
    decision: Input[Artifact],
):
    """Make the gated challenger the champion."""
    from dubops.components.registry import run_promote

    run_promote(config_json, store_dir, parent_run_id, corpus, version, decision)


def finalize_run(
    config_json: str,
    store_dir: str,
    parent_run_id: str,
    job_id: str,
    status: dsl.PipelineTaskFinalStatus,
):
    """Exit handler: end the parent MLflow run FINISHED, or FAILED when a task failed."""
    from dubops.components.finalize import run_finalize

    run_finalize(config_json, store_dir, parent_run_id, job_id, status)


FUNCTIONS = (
    validate_data,
    reasoner_sft,
    reasoner_mpo,
    dit_pretrain,
    controlnet_tune,
    train_extractors,
    build_library,
    graph_synthesizer,
    evaluate,
    register_model,
    promotion_gate,
    promote,
    finalize_run,
)


def make_components(
    image: str, packages_to_install: list | None = None, pip_index_urls: list | None = None
) -> dict:
    """Every step as a KFP component on one image (``{step name: component}``).

    ``install_kfp_package=False``: the image holds dubops and with it kfp, so a step
    installs nothing unless ``packages_to_install`` says so.
    """
    return {
        func.__name__: dsl.component(
            func,
            base_image=image,
            packages_to_install=list(packages_to_install or []) or None,
            pip_index_urls=pip_index_urls,
            install_kfp_package=False,
        )
        for func in FUNCTIONS
    }
