"""The training DAG, one definition for ``kfp.local`` and for Kubeflow.

::

    validate_data ─┬─ reasoner_sft ── reasoner_mpo ─────────────────────────────┐
                   ├─ dit_pretrain ── controlnet_tune ──┐                        │
                   └─ train_extractors ── build_library ┴─ graph_synthesizer ── evaluate
        ── register_model (challenger) ── promotion_gate ── promote  (only if passed)

all inside a ``dsl.ExitHandler`` whose exit task (``finalize_run``) ends the parent
MLflow run FINISHED, or FAILED when any task failed.

Parameters: ``config_json`` (the resolved configuration, the one way steps get it:
what a local run resolved from preset + file + ``--set``, or for a compiled pipeline
the compiled preset's, replaceable at submission), ``data_dir`` (the corpus),
``store_dir`` (the persistent artifact store) and ``parent_run_id`` (the MLflow run
``dubops pipeline run`` opened; empty on a cluster, where the first step opens one).
"""

# No ``from __future__ import annotations``: kfp reads the pipeline's annotations as types.
from typing import Any

from dubops.config import DubOpsConfig


def build_pipeline(config: DubOpsConfig, packages_to_install: list[str] | None = None) -> Any:
    """The ``@dsl.pipeline`` of the training DAG for this configuration.

    Args:
        config: the configuration; ``pipeline`` decides the image and the cluster
            settings, and the whole config is the ``config_json`` default.
        packages_to_install: overrides ``pipeline.packages_to_install`` (local runs
            pass ``[]``: they use the running environment).
    """
    from kfp import dsl

    from dubops.components.steps import make_components
    from dubops.pipelines.platform import apply_platform

    p = config.pipeline
    packages = p.packages_to_install if packages_to_install is None else packages_to_install
    c = make_components(p.image, packages, p.pip_index_urls)
    job_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER

    @dsl.pipeline(name=p.name, description="DubOps training: reasoner, speech, library, graph")
    def training(
        config_json: str = config.model_dump_json(),
        data_dir: str = p.cluster.data_dir,
        store_dir: str = p.cluster.store_dir,
        parent_run_id: str = "",
    ) -> None:
        base = {"config_json": config_json, "store_dir": store_dir}
        final = c["finalize_run"](**base, parent_run_id=parent_run_id, job_id=job_id)
        tasks: dict[str, Any] = {"finalize_run": final}
        with dsl.ExitHandler(final, name="training"):
            v = c["validate_data"](
                **base, data_dir=data_dir, parent_run_id=parent_run_id, job_id=job_id
            )
            run = {**base, "parent_run_id": v.outputs["Output"]}
            corpus = v.outputs["corpus"]
            sft = c["reasoner_sft"](**run, corpus=corpus)
            mpo = c["reasoner_mpo"](**run, corpus=corpus, sft=sft.outputs["reasoner"])
            dit = c["dit_pretrain"](**run, corpus=corpus)
            cn = c["controlnet_tune"](**run, corpus=corpus, dit=dit.outputs["dit"])
            ext = c["train_extractors"](**run, corpus=corpus)
            lib = c["build_library"](**run, corpus=corpus, extractors=ext.outputs["extractors"])
            graph = c["graph_synthesizer"](
                **run,
                corpus=corpus,
                controlnet=cn.outputs["controlnet"],
                library=lib.outputs["library"],
            )
            ev = c["evaluate"](
                **run,
                corpus=corpus,
                reasoner=mpo.outputs["reasoner"],
                graph=graph.outputs["graph"],
                extractors=ext.outputs["extractors"],
                library=lib.outputs["library"],
            )
            reg = c["register_model"](
                **run,
                corpus=corpus,
                reasoner=mpo.outputs["reasoner"],
                graph=graph.outputs["graph"],
                extractors=ext.outputs["extractors"],
                library=lib.outputs["library"],
                evaluation=ev.outputs["evaluation"],
                drift_reference=ev.outputs["drift_reference"],
            )
            gate = c["promotion_gate"](
                **run, corpus=corpus, bundle=reg.outputs["bundle"], version=reg.outputs["Output"]
            )
            with dsl.If(gate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712
                promo = c["promote"](
                    **run,
                    corpus=corpus,
                    version=reg.outputs["Output"],
                    decision=gate.outputs["decision"],
                )
        tasks |= {
            "validate_data": v,
            "reasoner_sft": sft,
            "reasoner_mpo": mpo,
            "dit_pretrain": dit,
            "controlnet_tune": cn,
            "train_extractors": ext,
            "build_library": lib,
            "graph_synthesizer": graph,
            "evaluate": ev,
            "register_model": reg,
            "promotion_gate": gate,
            "promote": promo,
        }
        apply_platform(tasks, p.cluster)

    return training
