"""What ``dubops dub-clip`` leaves beside the dubbed video, and the clip's own evaluation.

``<out>.mp4`` (the silent video with the dub as its AAC track), ``<out>.wav``,
``<out>.reasoning.txt`` (the reasoner's answer, the conclusion used and, for a
corpus clip, the ground truth) and ``<out>.json`` (conclusion, timings, the
retrieved footage, the model's provenance and, for a corpus clip, the
evaluation's per-clip metrics against its ground truth). Every file is written
atomically.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dubops.fileio import atomic_path, write_json

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig
    from dubops.inference import DubResult

ATTRIBUTES = ("scene_type", "gender", "age", "emotion")


def reasoning_text(
    result: DubResult, script: str, header: str, truth: dict[str, Any] | None = None
) -> str:
    """The human-readable reasoning file."""
    status = (
        "parsed"
        if result.parse_ok
        else f"unparsable ({result.parse_error}); the documented fallback conclusion was used"
    )
    lines = [header, f"script: {script}", "", f"reasoner answer ({status}):"]
    lines.append(result.reasoning_text or "(empty)")
    lines.append("")
    lines.append("conclusion used: " + _labels(result.conclusion))
    if truth is not None:
        lines.append("ground truth:    " + _labels(truth))
    return "\n".join(lines) + "\n"


def reasoning_check(conclusion: dict[str, str], truth: dict[str, Any]) -> dict[str, Any]:
    """Per attribute: predicted, ground truth, correct."""
    return {
        a: {
            "predicted": conclusion.get(a),
            "truth": str(truth[a]),
            "correct": conclusion.get(a) == str(truth[a]),
        }
        for a in ATTRIBUTES
    }


def score_dubbed_clip(
    config: DubOpsConfig, data_dir: Path, row: dict[str, Any], wav: Path, mos: bool = True
) -> dict[str, Any]:
    """The evaluation's metrics of one dubbed corpus clip against its ground truth.

    Runs :func:`dubops.evaluation.session.run_evaluation` on the clip's split
    with a prediction folder that holds only this clip, so the clip is scored
    exactly as ``dubops eval`` scores it (same recogniser, classifiers, proxies).
    """
    import shutil

    from dubops.evaluation.session import EvalOptions, run_evaluation

    with tempfile.TemporaryDirectory(prefix="dubops-clip-eval-") as tmp:
        pred = Path(tmp) / "dub"
        pred.mkdir()
        shutil.copy2(wav, pred / f"{row['clip_id']}.wav")
        options = EvalOptions(splits=(str(row["split"]),), mos=mos, workers=1)
        # The runner warns about every other clip of the split having no prediction.
        with _quiet("dubops.evaluation.runner"):
            result = run_evaluation(
                Path(data_dir),
                config,
                preds=[pred],
                baselines=[],
                options=options,
                out_dir=Path(tmp) / "report",
            )
    overall = dict(result["systems"]["dub"]["overall"])
    overall.pop("clips", None)
    return overall


def write_dub_outputs(
    out_mp4: Path,
    result: DubResult,
    script: str,
    header: str,
    summary: dict[str, Any],
    truth: dict[str, Any] | None = None,
    final_mp4: Path | None = None,
) -> dict[str, str]:
    """Write ``<out>.reasoning.txt`` and ``<out>.json``; returns every output path.

    ``final_mp4``: where the files will be once moved (the CLI writes them into a
    temp folder first, so a failure leaves nothing); the paths recorded name it.
    """
    text_path = out_mp4.with_suffix(".reasoning.txt")
    with atomic_path(text_path) as tmp:
        tmp.write_text(reasoning_text(result, script, header, truth))
    json_path = out_mp4.with_suffix(".json")
    shown = final_mp4 or out_mp4
    files = {
        "video": str(shown),
        "wav": str(shown.with_suffix(".wav")),
        "reasoning": str(shown.with_suffix(".reasoning.txt")),
        "json": str(shown.with_suffix(".json")),
    }
    write_json(
        json_path,
        {**result.to_json(), **summary, "files": files, "written_at": time.strftime("%FT%T%z")},
    )
    return files


def _labels(values: dict[str, Any]) -> str:
    return "; ".join(f"{a}={values.get(a)}" for a in ATTRIBUTES)


@contextlib.contextmanager
def _quiet(name: str):
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)
