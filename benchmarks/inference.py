"""DubbingPipeline throughput: clips/s and real-time factor per step, batch 1, 4 and 8.

The same clips (the first N held-out clips of the corpus) are dubbed through
``dub_many`` in batches of 1, 4 and 8, interleaved round by round so a busy
machine slows every batch size alike; the reference is batch 1 in the same run,
and the ratio is batch b's clips/s over batch 1's. Per step, the real-time factor
is the step's seconds over the seconds of speech made (below 1: faster than
real time). The first pass (model warm-up, caches) is not timed.

    python benchmarks/inference.py --model models:/dubbing@champion --data data/tiny

``--model`` takes what ``dubops dub`` takes (a registry URI, a bundle, or a graph
run folder with ``--reasoner`` and ``--extractors``). Writes
``benchmarks/results/inference.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STEPS = ("read", "reason", "embed", "retrieve", "generate", "vocode")


def _dub(pipeline, requests, batch: int) -> dict:
    """Dub every request in batches of ``batch``; wall seconds, per-step seconds, audio."""
    began = time.perf_counter()
    steps = dict.fromkeys(STEPS, 0.0)
    audio = 0.0
    for start in range(0, len(requests), batch):
        results = pipeline.dub_many(requests[start : start + batch])
        for result in results:
            audio += result.duration
            for step in STEPS:
                steps[step] += result.seconds.get(step, 0.0)
    return {"wall": time.perf_counter() - began, "steps": steps, "audio": audio}


def main() -> None:
    import torch

    from dubops.config import load_config
    from dubops.data.datasets import load_manifest
    from dubops.inference.corpus import row_request
    from dubops.inference.loading import load_pipeline
    from dubops.run_environment import cpu_description

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/dubbing@champion")
    parser.add_argument("--reasoner", type=Path)
    parser.add_argument("--extractors", type=Path)
    parser.add_argument("--library", type=Path)
    parser.add_argument("--data", type=Path, default=Path("data/tiny"))
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    config = load_config(args.preset)
    rows = load_manifest(args.data, ["test_s2", "test_s1"]).head(args.clips).to_dict("records")
    requests = [row_request(args.data, r) for r in rows]
    pipeline, loaded = load_pipeline(
        config, args.model, args.library, reasoner_dir=args.reasoner, extractors_dir=args.extractors
    )
    with pipeline:
        pipeline.dub_many(requests[: max(args.batches)])  # warm-up, not timed
        runs: dict[int, list[dict]] = {b: [] for b in args.batches}
        for _ in range(args.rounds):
            for batch in args.batches:
                runs[batch].append(_dub(pipeline, requests, batch))
    table = []
    for batch, done in runs.items():
        wall = sum(r["wall"] for r in done)
        audio = sum(r["audio"] for r in done)
        clips = len(requests) * len(done)
        table.append(
            {
                "batch": batch,
                "clips": clips,
                "wall_seconds": round(wall, 2),
                "clips_per_second": round(clips / wall, 3),
                "rtf_total": round(wall / audio, 3),
                "rtf": {s: round(sum(r["steps"][s] for r in done) / audio, 4) for s in STEPS},
            }
        )
    reference = table[0]["clips_per_second"]
    for row in table:
        row["speedup_vs_batch1"] = round(row["clips_per_second"] / reference, 2)
    print(
        f"model {loaded.get('model')}, {len(requests)} clips x {args.rounds} rounds, "
        f"{args.threads} torch threads, {cpu_description().get('cpu_model', '?')}"
    )
    header = f"{'batch':>5} {'clips/s':>8} {'x b1':>5} {'RTF':>6} " + " ".join(
        f"{s:>9}" for s in STEPS
    )
    print(header)
    for row in table:
        steps = " ".join(f"{row['rtf'][s]:>9.4f}" for s in STEPS)
        print(
            f"{row['batch']:>5} {row['clips_per_second']:>8.3f} {row['speedup_vs_batch1']:>5.2f} "
            f"{row['rtf_total']:>6.3f} {steps}"
        )
    result = {
        "benchmark": "inference",
        "model": {k: v for k, v in loaded.items() if isinstance(v, str | int)},
        "clips": len(requests),
        "rounds": args.rounds,
        "torch_threads": args.threads,
        "machine": {"cpus": os.cpu_count(), **cpu_description()},
        "note": "RTF per step = the step's seconds / seconds of speech made; batch 1 is the "
        "reference; batch sizes are interleaved round by round",
        "rows": table,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "inference.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
