"""The ``validate_data`` step: the Great Expectations suite over the corpus, before any training.

It also settles the pipeline's parent MLflow run (a cluster run opens it here) and
hands the corpus on as a Dataset whose metadata carries the folder and its version.
"""

from __future__ import annotations

from typing import Any

from dubops.components.runtime import StepContext, StepResult, run_step
from dubops.errors import InputError


def _validate(ctx: StepContext) -> StepResult:
    import json
    from dataclasses import asdict

    from dubops.data.layout import CorpusLayout
    from dubops.data.validation import format_report, validate_corpus
    from dubops.fileio import write_json

    report = validate_corpus(ctx.data_dir, ctx.config.audio)
    folder = ctx.out_dir / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "validation.json", asdict(report))
    info = CorpusLayout(ctx.data_dir).info
    if info.is_file():
        write_json(folder / "corpus.json", json.loads(info.read_text()))
    if ctx.tracker is not None:
        ctx.tracker.log_artifact(folder / "validation.json", "validation")
    if not report.ok:
        raise InputError(f"corpus {ctx.data_dir} failed validation:\n{format_report(report)}")
    metrics = {"clips": report.checked_rows, "expectations": report.expectations}
    return StepResult(exports={"corpus": "corpus"}, metrics=metrics)


def run_validate_data(
    config_json: str,
    data_dir: str,
    store_dir: str,
    parent_run_id: str,
    job_id: str,
    corpus: Any,
) -> str:
    """Validate the corpus; return the pipeline's parent run id."""
    outcome = run_step(
        "validate_data",
        config_json=config_json,
        store_dir=store_dir,
        parent_run_id=parent_run_id,
        job_id=job_id,
        data_dir=data_dir,
        body=_validate,
        outputs={"corpus": corpus},
    )
    return outcome.parent_run_id
