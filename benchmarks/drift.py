"""Drift detection measured: shifted corpora are flagged, same-law clips are not.

Why this exists: the monitoring issue asks that drift be measured, not assumed.
The reference is built exactly as the evaluate step builds it (the served path's
records of the reference splits, :func:`describe_corpus` + :func:`build_reference`
with the config's ``monitoring`` settings), for a trained model. Then each
scenario is a corpus made by ``dubops data synth`` with one setting changed
(``same`` changes only the seed: new clips of the training distribution, the
false-alarm case). Every clip of a scenario goes through the same served-path
records; the records are shuffled and cut into ``--windows`` disjoint windows of
``monitoring.window`` clips, each scored with the reference's calibrated
thresholds as the servers score their rolling window. A window is *flagged* when
any feature's score exceeds 1 (the servers' alert condition). Reported per
scenario: flagged windows / windows (detection rate; for ``same`` the false-alarm
rate) and the features that flagged most.

It also times what monitoring adds to a request, in the same process: the
feature record (:func:`clip_features`, computed inside every dub), the
``DriftMonitor.observe`` call (the request path) and one window's scoring (the
background thread), beside a dub of a held-out clip (median of interleaved runs).

    python benchmarks/drift.py --model models:/dubbing@champion --data data/tiny
    python benchmarks/drift.py --model models:/dubbing@challenger \\
        --set tracking.tracking_uri=sqlite:////work/tinyfull/mlruns.db \\
        --set tracking.artifact_location=/work/tinyfull/mlartifacts

Corpora and records are cached under ``--work`` (default outputs/drift-bench), so
an interrupted run resumes. Writes ``benchmarks/results/drift.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# name -> (what changes, `dubops data synth` settings besides clips and seed)
SCENARIOS: dict[str, tuple[str, list[str]]] = {
    "same": ("training distribution, new seed (false alarms)", []),
    "narration": ("only narrations", ["synth.scene_weights={narration: 1}"]),
    "emotion_mix": (
        "3:1 joy:surprise, no other emotion",
        ["synth.emotion_weights={joy: 3, surprise: 1}"],
    ),
    "fps30": ("30 fps video instead of 25", ["video.fps=30"]),
    "size128": ("128 px frames instead of 96", ["video.size=128"]),
}


def synth(name: str, extra: list[str], clips: int, seed: int, work: Path) -> Path:
    """The scenario's corpus (made once; a finished corpus has its manifest)."""
    out = work / "corpora" / name
    if (out / "manifest.parquet").is_file():
        return out
    sets = [f"synth.clips={clips}", f"synth.seed={seed}", *extra]
    command = [str(Path(sys.executable).with_name("dubops")), "data", "synth", "--preset", "tiny"]
    command += [a for s in sets for a in ("--set", s)] + ["--out", str(out)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return out


def records(pipeline: Any, corpus: Path, splits: list[str] | None, cache: Path) -> tuple:
    """``(features, vectors)`` of a corpus's clips, cached as JSON."""
    from dubops.inference.corpus import describe_corpus
    from dubops.monitoring.features import json_ready

    if cache.is_file():
        data = json.loads(cache.read_text())
        return data["features"], data["vectors"]

    def progress(done: int, total: int) -> None:
        print(f"\r  {corpus.name}: {done}/{total} clips", end="", file=sys.stderr, flush=True)

    features, vectors = describe_corpus(pipeline, corpus, splits, progress=progress)
    print(file=sys.stderr)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".part")
    tmp.write_text(json.dumps({"features": [json_ready(f) for f in features], "vectors": vectors}))
    os.replace(tmp, cache)
    return features, vectors


def score_windows(reference: Any, features: list, vectors: list, windows: int, seed: int) -> dict:
    """Disjoint shuffled windows of the reference's size; flagged when any score > 1."""
    size = reference.window
    if len(features) < windows * size:
        raise SystemExit(f"{len(features)} clips make fewer than {windows} windows of {size}")
    order = np.random.default_rng(seed).permutation(len(features))
    flagged, counts, top_scores = 0, {}, []
    for w in range(windows):
        take = order[w * size : (w + 1) * size]
        report = reference.compare([features[i] for i in take], [vectors[i] for i in take])
        over = [name for name, row in report.items() if row["score"] > 1]
        flagged += bool(over)
        for name in over:
            counts[name] = counts.get(name, 0) + 1
        top_scores.append(max(row["score"] for row in report.values()))
    return {
        "windows": windows,
        "window_size": size,
        "flagged": flagged,
        "rate": round(flagged / windows, 3),
        "features_flagged": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
        "max_score_median": round(statistics.median(top_scores), 3),
    }


def overhead(pipeline: Any, reference: Any, corpus: Path, rounds: int) -> dict[str, Any]:
    """Monitoring's cost per request beside a dub, interleaved (dub, monitor, dub, ...)."""
    from dubops.data.datasets import load_manifest
    from dubops.inference.corpus import row_request
    from dubops.monitoring.features import clip_features
    from dubops.monitoring.online import DriftMonitor

    row = load_manifest(corpus, ["test_s2"]).iloc[0].to_dict()
    request = row_request(corpus, row)
    media = pipeline.read_media([request])[0]
    result = pipeline.dub(request)  # warm
    monitor = DriftMonitor(reference, lambda report, size: None)
    window = [(result.features, result.query_vectors)] * reference.window
    dub_s, features_s, observe_s, compare_s = [], [], [], []
    for _ in range(rounds):
        tick = time.perf_counter()
        pipeline.dub(request)
        dub_s.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        clip_features(
            request.script,
            media.frames.shape,
            media.fps,
            media.prompt,
            media.prompt_rate,
            None,
            result.conclusion,
            result.footage,
        )
        features_s.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        monitor.observe(result.features, result.query_vectors)
        observe_s.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        reference.compare([f for f, _ in window], [v for _, v in window])
        compare_s.append(time.perf_counter() - tick)
    monitor.close()
    dub = statistics.median(dub_s)
    request_path = statistics.median(features_s) + statistics.median(observe_s)
    return {
        "clip": row["clip_id"],
        "rounds": rounds,
        "dub_seconds_median": round(dub, 4),
        "dub_seconds_spread": [round(min(dub_s), 4), round(max(dub_s), 4)],
        "features_ms_median": round(1000 * statistics.median(features_s), 3),
        "observe_us_median": round(1e6 * statistics.median(observe_s), 1),
        "window_scoring_ms_median": round(1000 * statistics.median(compare_s), 3),
        "request_path_share_of_dub": round(request_path / dub, 5),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model", default="models:/dubbing@champion")
    parser.add_argument(
        "--data", type=Path, default=ROOT / "data" / "tiny", help="reference corpus"
    )
    parser.add_argument("--set", action="append", default=[], help="config override (repeatable)")
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved overhead rounds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "drift-bench")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "drift.json")
    args = parser.parse_args(argv)

    import torch

    from dubops.config import load_config
    from dubops.inference.loading import load_pipeline
    from dubops.monitoring.reference import build_reference
    from dubops.run_environment import cpu_description

    torch.set_num_threads(args.threads)
    config = load_config("tiny", overrides=args.set)
    watch = config.monitoring
    clips = args.windows * watch.window
    pipeline, info = load_pipeline(config, args.model)
    ref_features, ref_vectors = records(
        pipeline, args.data, list(watch.reference_splits), args.work / "records" / "reference.json"
    )
    reference = build_reference(
        ref_features,
        ref_vectors,
        window=watch.window,
        alpha=watch.alpha,
        draws=watch.draws,
        embedding_dims=watch.embedding_dims,
    )
    rows = []
    for i, (name, (what, extra)) in enumerate(SCENARIOS.items()):
        corpus = synth(name, extra, clips, 101 + i, args.work)
        features, vectors = records(pipeline, corpus, None, args.work / "records" / f"{name}.json")
        scored = score_windows(reference, features, vectors, args.windows, args.seed)
        rows.append({"scenario": name, "change": what, "settings": extra, **scored})
    cost = overhead(pipeline, reference, args.data, args.rounds)
    pipeline.close()

    print(
        f"\nreference: {reference.clips} clips of {watch.reference_splits}, window "
        f"{watch.window}, alpha {watch.alpha} (family-wise), {len(reference.thresholds)} features"
    )
    print(f"{'scenario':<12} {'change':<46} {'flagged':>9} {'rate':>6}  most flagged")
    for r in rows:
        top = ", ".join(f"{k} {v}" for k, v in list(r["features_flagged"].items())[:3])
        print(
            f"{r['scenario']:<12} {r['change']:<46} {r['flagged']:>4}/{r['windows']:<4} "
            f"{r['rate']:>6.2f}  {top}"
        )
    print(
        f"\nper request: features {cost['features_ms_median']} ms, observe "
        f"{cost['observe_us_median']} us (dub {cost['dub_seconds_median']} s: "
        f"{100 * cost['request_path_share_of_dub']:.3f} %); window scoring "
        f"{cost['window_scoring_ms_median']} ms in the background thread"
    )
    result = {
        "benchmark": "drift",
        "model": info,
        "reference": {
            "corpus": str(args.data),
            "splits": list(watch.reference_splits),
            "clips": reference.clips,
            "window": watch.window,
            "alpha": watch.alpha,
            "draws": watch.draws,
            "thresholds": {k: vars(v) for k, v in reference.thresholds.items()},
        },
        "scenarios": rows,
        "overhead": cost,
        "machine": {
            "cpus": os.cpu_count(),
            **cpu_description(),
            "torch_threads": args.threads,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
    }
    from dubops.fileio import write_json

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
