"""The evaluation report: JSON, a per-clip Parquet table per system and one HTML page.

The HTML puts every system (model outputs and baselines) side by side per
metric, with mel plots and audio players of a few clips and the emotion
confusion matrix; with ``--mlflow`` the same files become run artifacts.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from dubops.config import AudioConfig
from dubops.data.layout import CorpusLayout
from dubops.data.schema import EMOTIONS
from dubops.fileio import atomic_path, write_json

# (key, label, better): the order of the report's table.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("mcd_dtw", "MCD-DTW (dB)", "lower"),
    ("mcd_dtw_sl", "MCD-DTW-SL", "lower"),
    ("spk_sim_target", "SPK-SIM vs target (%)", "higher"),
    ("spk_sim_prompt", "SECS vs timbre prompt (%)", "higher"),
    ("wer", "WER", "lower"),
    ("wer_ground_truth", "WER of the ground truth (same ASR)", "lower"),
    ("emo_acc", "EMO-ACC", "higher"),
    ("emo_sim", "EMO-SIM (%)", "higher"),
    ("lse_distance", "LSE-D proxy (1 - peak corr)", "lower"),
    ("lse_confidence", "LSE-C proxy (peak - median corr)", "higher"),
    ("lse_abs_offset_frames", "|AV offset| (frames)", "lower"),
    ("syncnet_lse_d", "LSE-D (SyncNet)", "lower"),
    ("syncnet_lse_c", "LSE-C (SyncNet)", "higher"),
    ("syncnet_abs_offset_frames", "|AV offset| SyncNet (frames)", "lower"),
    ("duration_abs_error_s", "duration error (s)", "lower"),
    ("duration_rel_error", "duration error (relative)", "lower"),
    ("dnsmos_ovrl", "DNSMOS OVRL", "higher"),
)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def metric_table(summaries: dict[str, dict], scope: str = "overall") -> pd.DataFrame:
    """Rows = metrics, columns = systems, for one scope (overall or a split)."""
    rows = {}
    for key, label, better in METRICS:
        values = {name: s.get(scope, {}).get(key) for name, s in summaries.items()}
        if any(v is not None for v in values.values()):
            rows[f"{label} ({better} is better)"] = values
    return pd.DataFrame(rows).T


def _mel_plot(wave_paths: dict[str, Path], audio: AudioConfig, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dubops.audio import MelFrontEnd, read_wav

    front_end = MelFrontEnd(audio)
    fig, axes = plt.subplots(len(wave_paths), 1, figsize=(8, 1.8 * len(wave_paths)), squeeze=False)
    for ax, (name, path) in zip(axes[:, 0], wave_paths.items(), strict=True):
        wave, _ = read_wav(path, audio.sample_rate)
        ax.imshow(front_end(wave).numpy(), origin="lower", aspect="auto", cmap="magma")
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def _confusion_plot(per_clip: pd.DataFrame, manifest: pd.DataFrame, out: Path) -> bool:
    if "emo_pred" not in per_clip:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = per_clip["clip_id"].map(manifest.set_index("clip_id")["emotion"])
    matrix = pd.crosstab(truth, per_clip["emo_pred"]).reindex(
        index=list(EMOTIONS), columns=list(EMOTIONS), fill_value=0
    )
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(matrix.values, cmap="Blues")
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, fontsize=7)
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS, fontsize=7)
    for (i, j), v in np.ndenumerate(matrix.values):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("label")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return True


def reasoning_table(scores: dict[str, dict]) -> pd.DataFrame:
    """One row per scope (overall, each split): validity, accuracies, scene-type recalls."""
    rows = {}
    for scope, r in scores.items():
        row = {"clips": r["clips"], "format": r["format_validity"]}
        row |= {a.replace("_accuracy", ""): v for a, v in r.items() if a.endswith("_accuracy")}
        row |= {f"recall {k}": v for k, v in r["scene_type_recall"].items()}
        row["avg recall"] = r["scene_type_average_recall"]
        rows[scope] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def write_report(
    out_dir: str | Path,
    summaries: dict[str, dict],
    per_clip: dict[str, pd.DataFrame],
    pred_dirs: dict[str, Path],
    corpus_root: str | Path,
    audio: AudioConfig,
    samples: int = 3,
) -> Path:
    """Write summary.json, per_clip/<system>.parquet, media and report.html; return the HTML."""
    out = Path(out_dir)
    (out / "per_clip").mkdir(parents=True, exist_ok=True)
    (out / "media").mkdir(exist_ok=True)
    write_json(out / "summary.json", summaries)
    for name, table in per_clip.items():
        with atomic_path(out / "per_clip" / f"{name}.parquet") as tmp:
            table.to_parquet(tmp, index=False)
    layout = CorpusLayout(Path(corpus_root))
    manifest = pd.read_parquet(layout.manifest)
    first = next(iter(per_clip.values()))
    sample_ids = list(first["clip_id"].head(samples))
    parts = [
        "<!doctype html><meta charset='utf-8'><title>DubOps evaluation</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}</style>",
        f"<h1>DubOps evaluation</h1><p>corpus: {html.escape(str(corpus_root))}</p>",
    ]
    scopes = [
        "overall",
        *sorted({k for s in summaries.values() for k in s if k.startswith("test")}),
    ]
    for scope in scopes:
        table = metric_table(summaries, scope)
        parts.append(f"<h2>{html.escape(scope)}</h2>")
        parts.append(table.map(_fmt).to_html(escape=True))
    for name, table in per_clip.items():
        image = out / "media" / f"emotion_confusion_{name}.png"
        if _confusion_plot(table, manifest, image):
            parts.append(f"<h3>emotion confusion: {html.escape(name)}</h3>")
            parts.append(f"<img src='media/{image.name}'>")
    parts.append("<h2>samples</h2>")
    for clip_id in sample_ids:
        row = manifest.set_index("clip_id").loc[clip_id]
        parts.append(f"<h3>{html.escape(clip_id)}: {html.escape(str(row['script']))}</h3>")
        waves = {"reference": layout.resolve(row["audio_path"])}
        waves |= {
            name: d / f"{clip_id}.wav"
            for name, d in pred_dirs.items()
            if (d / f"{clip_id}.wav").is_file()
        }
        plot = out / "media" / f"mel_{clip_id}.png"
        _mel_plot(waves, audio, plot)
        parts.append(f"<img src='media/{plot.name}'><br>")
        for name, path in waves.items():
            copy = out / "media" / f"{clip_id}_{name}.wav"
            shutil.copyfile(path, copy)
            parts.append(
                f"{html.escape(name)}: <audio controls src='media/{copy.name}'></audio><br>"
            )
    page = out / "report.html"
    with atomic_path(page) as tmp:
        tmp.write_text("\n".join(parts))
    return page
