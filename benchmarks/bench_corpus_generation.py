"""Corpus generation speed: clips per second for 1 and N workers, same run.

Prints a table and writes ``benchmarks/results/corpus_generation.json``. The
reference is the single-worker run in the same invocation; the ratio is the
parallel speed-up on this machine.

    python benchmarks/bench_corpus_generation.py --clips 48 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path


def _run(clips: int, workers: int, root: Path) -> dict:
    from dubops.config import load_config
    from dubops.data.synthetic import generate_corpus

    config = load_config("tiny", overrides=[f"synth.clips={clips}", f"synth.workers={workers}"])
    out = root / f"w{workers}"
    start = time.perf_counter()
    info = generate_corpus(config, out)
    wall = time.perf_counter() - start
    return {
        "workers": workers,
        "clips": info["clips"],
        "wall_seconds": round(wall, 2),
        "clips_per_second": round(info["clips"] / wall, 3),
        "audio_seconds": round(info["audio_hours"] * 3600, 1),
        "realtime_factor": round(info["audio_hours"] * 3600 / wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="dubops-bench-"))
    try:
        # Warm-up: start the fork server (module preloads) outside the timings.
        _run(2, 1, root / "warmup")
        rows = [_run(args.clips, 1, root)]
        if args.workers > 1:
            rows.append(_run(args.clips, args.workers, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    reference = rows[0]["clips_per_second"]
    print(
        f"{'workers':>8} {'clips':>6} {'wall s':>8} {'clips/s':>8} "
        f"{'x realtime':>11} {'speed-up':>9}"
    )
    for row in rows:
        row["speedup_vs_1_worker"] = round(row["clips_per_second"] / reference, 2)
        print(
            f"{row['workers']:>8} {row['clips']:>6} {row['wall_seconds']:>8} "
            f"{row['clips_per_second']:>8} {row['realtime_factor']:>11} "
            f"{row['speedup_vs_1_worker']:>9}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "corpus_generation",
        "preset": "tiny",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "rows": rows,
    }
    (args.out / "corpus_generation.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
