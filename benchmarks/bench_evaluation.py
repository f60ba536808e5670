"""Speed of the full metric suite: clips per second scoring the ground-truth baseline.

Runs ``run_evaluation`` on a corpus's test splits with 1 and N workers in one
invocation (1 worker is the reference), prints a table and writes
``benchmarks/results/evaluation.json``. ``--max-clips`` scores the first N test
clips only (a run of a few minutes on two cores).

    python benchmarks/bench_evaluation.py --corpus data/tiny --workers 2 [--max-clips 24] [--no-mos]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def _run(corpus: Path, workers: int, mos: bool, max_clips: int | None, out: Path) -> dict:
    from dubops.config import load_config
    from dubops.evaluation.session import EvalOptions, run_evaluation

    config = load_config("tiny")
    options = EvalOptions(mos=mos, max_clips=max_clips, workers=workers)
    start = time.perf_counter()
    result = run_evaluation(
        corpus, config, preds=[], baselines=["ground-truth"], options=options, out_dir=out
    )
    wall = time.perf_counter() - start
    scoring = result["scoring"]
    return {
        "workers": workers,
        "clips": scoring["clips"],
        "wall_seconds": round(wall, 2),
        "scoring_seconds": scoring["seconds"],
        "clips_per_second": scoring["clips_per_second"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/tiny"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-mos", action="store_true")
    parser.add_argument("--max-clips", type=int, default=None, help="first N test clips only")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in sorted({1, args.workers}):
            out = Path(tmp) / f"w{workers}"
            rows.append(_run(args.corpus, workers, not args.no_mos, args.max_clips, out))
    reference = rows[0]["clips_per_second"]
    print(f"{'workers':>8} {'clips':>6} {'score s':>8} {'clips/s':>8} {'speed-up':>9}")
    for row in rows:
        row["speedup_vs_1_worker"] = round(row["clips_per_second"] / reference, 2)
        print(
            f"{row['workers']:>8} {row['clips']:>6} {row['scoring_seconds']:>8} "
            f"{row['clips_per_second']:>8} {row['speedup_vs_1_worker']:>9}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "evaluation",
        "corpus": str(args.corpus),
        "dnsmos": not args.no_mos,
        "max_clips": args.max_clips,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "rows": rows,
    }
    (args.out / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
