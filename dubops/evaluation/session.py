"""One evaluation run: baselines + predictions scored, reported, optionally logged to MLflow.

The CLI and the pipeline's ``evaluate`` step call :func:`run_evaluation`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dubops.config import DubOpsConfig
from dubops.data.layout import CorpusLayout, manifest_hash
from dubops.errors import InputError
from dubops.evaluation.baselines import BASELINES, write_baseline
from dubops.evaluation.lipsync import MOUTH_TRACKERS
from dubops.evaluation.runner import TEST_SPLITS, EvalSettings, evaluate_systems, select_clips
from dubops.fileio import write_json

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalOptions:
    """The choices of one evaluation run (``dubops eval``'s options)."""

    splits: tuple[str, ...] = TEST_SPLITS
    asr: str = "sphinx"  # sphinx, sphinx-general or whisper:/local/path
    mos: bool = True  # DNSMOS, the slowest metric
    mouth: str = "cartoon"  # cartoon (drawn mouths) or face-mesh (filmed faces)
    syncnet: Path | None = None  # SyncNet weights for the exact LSE-D / LSE-C
    max_clips: int | None = None  # the first N selected clips only
    workers: int = 2

    def __post_init__(self) -> None:
        if self.mouth not in MOUTH_TRACKERS:
            raise InputError(f"unknown mouth tracker {self.mouth!r}; choose from {MOUTH_TRACKERS}")
        if self.workers < 1:
            raise InputError(f"workers must be at least 1, got {self.workers}")


def _settings(corpus: Path, config: DubOpsConfig, options: EvalOptions) -> EvalSettings:
    from dubops.data.report.corpus_lm import training_text
    from dubops.evaluation.emotion import load_or_train

    syncnet = None
    if options.syncnet is not None:
        from dubops.evaluation.syncnet import load_syncnet

        load_syncnet(options.syncnet)  # a wrong file fails here, not in every worker
        syncnet = str(options.syncnet)
    lm_text = tuple(training_text(pd.read_parquet(CorpusLayout(corpus).manifest)))
    classifier = load_or_train(corpus)
    return EvalSettings(
        corpus_root=str(corpus),
        audio=config.audio,
        asr=options.asr,
        lm_text=lm_text if options.asr == "sphinx" else (),
        emotion_dir=str(classifier.directory),
        mos=options.mos,
        mouth=options.mouth,
        syncnet_path=syncnet,
    )


def run_evaluation(
    corpus: Path,
    config: DubOpsConfig,
    preds: list[Path],
    baselines: list[str],
    options: EvalOptions = EvalOptions(),
    reasoning_jsonl: Path | None = None,
    out_dir: Path = Path("outputs/eval"),
    log_mlflow: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Score every system, write the report and return the summary."""
    from dubops.evaluation.report import write_report

    names = list(BASELINES) if "all" in baselines else baselines
    unknown = [b for b in names if b not in BASELINES]
    if unknown:
        raise InputError(f"unknown baseline(s) {unknown}; choose from {BASELINES} or all")
    clips = select_clips(corpus, options.splits, options.max_clips)
    if not names and not preds:
        return _reasoning_only(corpus, clips, reasoning_jsonl, out_dir)
    settings = _settings(corpus, config, options)
    systems: dict[str, Path] = {}
    for name in names:
        systems[name] = write_baseline(
            name, corpus, clips, out_dir / "baselines" / name, config.audio
        )
    for path in preds:
        systems[path.name] = path
    logger.info("scoring %s on %d clips", ", ".join(systems), len(clips))
    summaries, tables, timing = evaluate_systems(
        systems, clips, settings, options.workers, progress
    )
    result: dict = {
        "corpus": str(corpus),
        "splits": list(options.splits),
        "systems": summaries,
        "scoring": timing,
    }
    if reasoning_jsonl is not None:
        result["reasoning"] = _score_reasoning_file(corpus, clips, reasoning_jsonl)
    result["emotion_classifier"] = settings.emotion_dir
    page = write_report(out_dir, summaries, tables, systems, corpus, config.audio)
    result["report"] = str(page)
    if log_mlflow:
        _log_to_mlflow(result, config, corpus, out_dir)
    return result


def _score_reasoning_file(corpus: Path, clips: pd.DataFrame, path: Path) -> dict:
    """Reasoning metrics over the selected clips: ``overall`` and one entry per split."""
    from dubops.evaluation.reasoning import read_reasoning_jsonl, score_reasoning

    outputs = read_reasoning_jsonl(path)
    rows = pd.read_parquet(CorpusLayout(corpus).manifest)
    rows = rows[rows["clip_id"].isin(set(clips["clip_id"]))]
    missing = sorted(set(rows["clip_id"]) - set(outputs))
    if missing:
        raise InputError(
            f"--reasoning {path} has no answer for {len(missing)} selected clip(s), "
            f"e.g. {missing[:3]}; run `dubops reason` on the same splits"
        )
    scores = {"overall": score_reasoning(outputs, rows)}
    for split, part in rows.groupby("split"):
        scores[str(split)] = score_reasoning(outputs, part)
    return scores


def _reasoning_only(corpus: Path, clips: pd.DataFrame, path: Path | None, out_dir: Path) -> dict:
    """``--reasoning`` alone: no audio is scored; ``reasoning.json`` goes to ``out_dir``."""
    if path is None:
        raise InputError("nothing to score: pass --pred DIR, --baseline NAME and/or --reasoning")
    result = {
        "corpus": str(corpus),
        "systems": {},
        "reasoning": _score_reasoning_file(corpus, clips, path),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "reasoning.json", result["reasoning"])
    result["report"] = str(out_dir / "reasoning.json")
    return result


def _log_to_mlflow(result: dict, config: DubOpsConfig, corpus: Path, out_dir: Path) -> None:
    from dubops.tracking import start_run

    version = manifest_hash(CorpusLayout(corpus).manifest)
    with start_run(config, "evaluate", data_version=version) as tracker:
        for system, summary in result["systems"].items():
            metrics = {
                f"{system}.{scope}.{k}": v
                for scope, values in summary.items()
                if isinstance(values, dict)
                for k, v in values.items()
                if isinstance(v, int | float) and v is not None
            }
            tracker.log_metrics(metrics, step=0)
        tracker.log_artifact(out_dir, artifact_path="evaluation")
