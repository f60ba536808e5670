"""Served-path quality and sampling time at several sampler step counts (NFE).

Why this exists: the speed issue allows fewer sampling steps only where quality
holds. Every held-out clip (test_s1 + test_s2) is dubbed through the served path
(the reasoner's own conclusions, the extractors' retrieval, the generator) once
per setting: read, reason, embed and retrieve run once per batch of clips, then
each setting plans, samples and vocodes the same batch, settings in turn (A, B,
C, A, B, C ...), so a busy machine slows every setting alike. The wavs are
scored with ``dubops eval``'s metrics (no DNSMOS), and each setting is compared
with the reference setting clip by clip: the mean paired difference and its
standard error, so "quality holds" means "the difference is within about two
standard errors of zero".

    python benchmarks/sampler_quality.py --model models:/dubbing@champion --data data/tiny \
        --nfe 16 12 8 6

Wavs go under ``--work`` (resumable: a setting's clips already written are kept,
with the sampling seconds measured when they were made); writes
``benchmarks/results/sampler_quality.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Metric column -> (name in the table, how to read it per clip, better direction).
METRICS = {
    "mcd_dtw": ("MCD-DTW dB", "lower"),
    "spk_sim_target": ("SPK-SIM %", "higher"),
    "lse_abs_offset": ("|AV offset| frames", "lower"),
    "emo_correct": ("emotion accuracy", "higher"),
    "duration_abs_error_s": ("duration error s", "lower"),
}


def dub_settings(
    pipeline: Any, requests: list[Any], settings: dict[str, int], work: Path, batch: int
) -> dict[str, list[float]]:
    """Write ``work/<setting>/<clip_id>.wav`` for every setting; sampling seconds per clip
    of each batch, kept in ``work/seconds.json`` across resumed runs."""
    import soundfile as sf

    from dubops.fileio import write_json

    kept = work / "seconds.json"
    seconds: dict[str, list[float]] = json.loads(kept.read_text()) if kept.is_file() else {}
    for name in settings:
        seconds.setdefault(name, [])
    for name in settings:
        (work / name).mkdir(parents=True, exist_ok=True)
    for start in range(0, len(requests), batch):
        reqs = requests[start : start + batch]
        todo = [
            n for n in settings if not all((work / n / f"{r.clip_id}.wav").exists() for r in reqs)
        ]
        if not todo:
            continue
        media = pipeline.read_media(reqs)
        conclusions = pipeline.reason(reqs, media)
        retrieval = None
        if pipeline.needs_footage:
            retrieval = pipeline.retrieve(reqs, pipeline.embed(reqs, media))
        for name in todo:
            asked = [r.model_copy(update={"nfe": settings[name]}) for r in reqs]
            plans = pipeline.plan(asked, media, conclusions, retrieval)
            tick = time.perf_counter()
            mels = pipeline.generator.sample(plans)
            seconds[name].append((time.perf_counter() - tick) / len(reqs))
            write_json(kept, seconds)
            for req, wave in zip(reqs, pipeline.vocode(mels), strict=True):
                tmp = work / name / f".{req.clip_id}.tmp.wav"
                sf.write(tmp, wave, pipeline.sample_rate)
                tmp.rename(work / name / f"{req.clip_id}.wav")
        print(f"  clips {start + len(reqs)}/{len(requests)}", flush=True)
    return seconds


def clip_word_errors(table: Any) -> np.ndarray:
    """Word errors per clip (edit distance over normalised words)."""
    from dubops.evaluation.asr import wer_of

    return np.array(
        [
            wer_of([s], [h]) * max(len(str(s).split()), 1)
            for s, h in zip(table["script"], table["hyp"], strict=True)
        ]
    )


def compare(tables: dict[str, Any], reference: str) -> dict[str, dict[str, Any]]:
    """Per setting: each metric's mean, and its mean paired difference from the
    reference with the standard error of that difference."""
    ref = tables[reference].set_index("clip_id")
    words = float(sum(max(len(str(s).split()), 1) for s in ref["script"]))
    ref_errors = clip_word_errors(ref.reset_index())
    out: dict[str, dict[str, Any]] = {}
    for name, table in tables.items():
        t = table.set_index("clip_id").loc[ref.index]
        row: dict[str, Any] = {"clips": len(t)}
        errors = clip_word_errors(t.reset_index())
        diff = errors - ref_errors
        row["wer"] = _stat(
            errors.sum() / words,
            diff.sum() / words,
            diff.std(ddof=1) * math.sqrt(len(diff)) / words,
        )
        for column in METRICS:
            source = "lse_offset" if column == "lse_abs_offset" else column
            if source not in t:
                continue
            values = t[source].astype(float)
            base = ref[source].astype(float)
            if column == "lse_abs_offset":
                values, base = values.abs(), base.abs()
            d = (values - base).dropna()
            se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
            sem = float(values.std(ddof=1) / math.sqrt(values.notna().sum()))
            row[column] = _stat(float(values.mean()), float(d.mean()), se, sem)
        out[name] = row
    return out


def _stat(mean: float, diff: float, se: float, se_mean: float | None = None) -> dict[str, float]:
    out = {"mean": round(float(mean), 4), "diff": round(float(diff), 4), "se": round(float(se), 4)}
    if se_mean is not None:
        out["se_of_mean"] = round(float(se_mean), 4)
    return out


def main() -> None:
    import torch

    from dubops.config import load_config
    from dubops.data.datasets import load_manifest
    from dubops.evaluation.session import EvalOptions, run_evaluation
    from dubops.fileio import write_json
    from dubops.inference.corpus import row_request
    from dubops.inference.loading import load_pipeline
    from dubops.run_environment import cpu_description

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models:/dubbing@champion")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "tiny")
    parser.add_argument("--nfe", type=int, nargs="+", default=[16, 12, 8, 6])
    parser.add_argument("--splits", nargs="+", default=["test_s1", "test_s2"])
    parser.add_argument("--max-clips", type=int)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--reuse-scores",
        action="store_true",
        help="keep the per-clip scores of an earlier run when every setting has them",
    )
    parser.add_argument(
        "--griffin-lim",
        nargs=2,
        type=float,
        metavar=("ITERS", "MOMENTUM"),
        help="vocode with these Griffin-Lim settings instead of audio's (a resumed run "
        "must match the vocoder its earlier clips were made with)",
    )
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "sampler-quality")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/sampler_quality.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config("tiny")
    settings = {f"nfe{n}": n for n in args.nfe}
    reference = next(iter(settings))
    rows = load_manifest(args.data, args.splits).to_dict("records")[: args.max_clips]
    requests = [row_request(args.data, row) for row in rows]
    print(f"{len(requests)} clips, settings {list(settings)} (reference {reference})", flush=True)
    with load_pipeline(config, args.model)[0] as pipeline:
        vocoder = pipeline.generator.vocoder
        if args.griffin_lim:
            iters, momentum = args.griffin_lim
            update = {"griffin_lim_iters": int(iters), "griffin_lim_momentum": momentum}
            vocoder.audio = vocoder.audio.model_copy(update=update)
        griffin_lim = {
            "iters": vocoder.audio.griffin_lim_iters,
            "momentum": vocoder.audio.griffin_lim_momentum,
        }
        seconds = dub_settings(pipeline, requests, settings, args.work, args.batch)
    print("scoring ...", flush=True)
    options = EvalOptions(splits=tuple(args.splits), mos=False, max_clips=args.max_clips)
    run_evaluation(
        args.data,
        config,
        [args.work / n for n in settings],
        [],
        options,
        out_dir=args.work / "eval",
    )
    import pandas as pd

    tables = {
        n: pd.read_parquet(args.work / "eval" / "per_clip" / f"{n}.parquet") for n in settings
    }
    result_rows = compare(tables, reference)
    for name, row in result_rows.items():
        row["nfe"] = settings[name]
        if seconds[name]:
            row["sampling_s_per_clip_median"] = round(statistics.median(seconds[name]), 4)
    ref_s = result_rows[reference].get("sampling_s_per_clip_median")
    print(
        f"\n{'setting':<8}{'sampling s':>11}{'speed-up':>9}"
        + "".join(f"{m:>24}" for m in ["wer", *METRICS])
    )
    for name, row in result_rows.items():
        s = row.get("sampling_s_per_clip_median")
        speed = f"{ref_s / s:.2f}x" if s and ref_s else "-"
        cells = "".join(
            f"{row[m]['mean']:>10.3f} ({row[m]['diff']:+.3f}±{row[m]['se']:.3f})"
            if m in row
            else f"{'-':>24}"
            for m in ["wer", *METRICS]
        )
        print(f"{name:<8}{s if s else '-':>11}{speed:>9}{cells}")
    write_json(
        args.out,
        {
            "benchmark": "sampler_quality",
            "model": args.model,
            "reference": reference,
            "splits": args.splits,
            "griffin_lim": griffin_lim,
            "machine": cpu_description() | {"torch_threads": args.threads},
            "settings": result_rows,
            "note": "diff = setting - reference, clip by clip; se = its standard error; "
            "se_of_mean = the standard error of the setting's own mean; sampling seconds "
            "per clip are medians over the batches of the run that made the clips",
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
