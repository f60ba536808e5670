"""The report as a terminal table: headline figures beside the targets they should meet."""

from __future__ import annotations

# figure -> (label, target) where a target is (">=" | "<=", bound); tiny corpus targets.
_ROWS: tuple[tuple[str, str, tuple[str, float] | None], ...] = (
    ("speaker_id_accuracy", "speaker id (GE2E, nearest centroid)", (">=", 0.95)),
    ("emotion_prosody_accuracy", "emotion from prosody (per-speaker z)", (">=", 0.80)),
    ("emotion_prosody_accuracy_unnormalised", "emotion from prosody (raw)", None),
    ("mouth_env_corr_talkers", "mouth/envelope corr, talkers", (">=", 0.80)),
    ("mouth_env_corr_silent", "mouth/envelope corr, silent", ("<=", 0.20)),
    ("scene_type_accuracy", "scene type from frames", None),
    ("people_count_accuracy", "people counted from frames", None),
    ("wer", "PocketSphinx WER", None),
)


def _fmt(value: object) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def report_rows(report: dict) -> list[tuple[str, str, str, str]]:
    """``(measure, value, target, verdict)`` rows of the headline figures."""
    rows = []
    for key, label, target in _ROWS:
        value = report.get(key)
        if key == "wer" and report.get("wer_mode"):
            label = f"{label} ({report['wer_mode']}, {report.get('wer_clips')} clips)"
        if key in ("emotion_prosody_accuracy", "scene_type_accuracy"):
            method = report.get(key.replace("accuracy", "method"))
            label = f"{label} [{method}]" if method else label
        verdict, target_text = "", ""
        if target is not None:
            op, bound = target
            target_text = f"{op} {bound:.2f}"
            if value is not None:
                met = value >= bound if op == ">=" else value <= bound
                verdict = "ok" if met else "MISS"
        rows.append((label, _fmt(value), target_text, verdict))
    return rows


def format_report(report: dict) -> str:
    """A Rich table as plain text (no colour codes), ready to print or log."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Learnability: {report.get('corpus', '')} ({report.get('clips')} clips)")
    for name in ("measure", "value", "target", ""):
        table.add_column(name)
    for row in report_rows(report):
        table.add_row(*row)
    seconds = report.get("seconds", {})
    timing = ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items())
    console = Console(width=100, record=True, color_system=None, force_terminal=False)
    with console.capture() as capture:
        console.print(table)
        if timing:
            console.print(f"time: {timing}")
    return capture.get()
