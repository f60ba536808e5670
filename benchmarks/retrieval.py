"""Footage retrieval latency: p50/p99 of a 3-modality top-3 query and of a batch of 32.

Through the serving path (``FootageLibrary.query`` / ``query_batch``, matched-audio
lookup included) for each backend (numpy, milvus, feast) at each library size
(random unit vectors), in one run. Each size is built once with the real build
(Parquet, Feast apply, materialisation into Milvus Lite) and its build stages are
timed too. A backend too slow for a size is recorded as skipped with the reason.

Prints a table and writes ``benchmarks/results/retrieval.json``.

    OMP_NUM_THREADS=1 python benchmarks/retrieval.py --sizes 1000 10000 100000 --repeats 50
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

import numpy as np

BACKENDS = ("numpy", "milvus", "feast")
GOAL_MS = 10.0  # p50 of one 3-modality query at 10k through the serving path


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _timed(fn, repeats: int, budget_s: float) -> list[float]:
    """Milliseconds of up to ``repeats`` calls, stopping early past ``budget_s`` (min 5)."""
    fn()  # warm-up (first search loads caches)
    times: list[float] = []
    start = time.perf_counter()
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
        if len(times) >= 5 and time.perf_counter() - start > budget_s:
            break
    return times


def _stats(times: list[float]) -> dict:
    return {
        "p50_ms": round(float(np.percentile(times, 50)), 3),
        "p99_ms": round(float(np.percentile(times, 99)), 3),
        "samples": len(times),
    }


def _bench_backend(library: Path, backend: str, repeats: int, budget_s: float, dim: int) -> dict:
    from dubops.feature_store.retrieval import FootageLibrary

    rng = np.random.default_rng(1)
    t = time.perf_counter()
    lib = FootageLibrary.open(library, backend)
    open_s = time.perf_counter() - t
    try:
        one = _unit(rng, 3, dim)
        batch = [_unit(rng, 32, dim) for _ in range(3)]
        single = _timed(lambda: lib.query(one[0], one[1], one[2], k=3), repeats, budget_s)
        batched = _timed(lambda: lib.query_batch(*batch, k=3), repeats, budget_s)
    finally:
        lib.close()
    per_query = [t / 32 for t in batched]
    return {
        "status": "ok",
        "open_s": round(open_s, 3),
        "query": _stats(single),
        "batch32": _stats(batched),
        "batch32_per_query_p50_ms": round(float(np.percentile(per_query, 50)), 3),
    }


def run(sizes: list[int], repeats: int, budget_s: float, max_online_rows: int, dim: int) -> dict:
    from dubops.feature_store.build import write_library
    from dubops.feature_store.settings import LibraryConfig
    from dubops.feature_store.synthetic import random_footage

    root = Path(tempfile.mkdtemp(prefix="dubops-bench-retrieval-"))
    results: dict = {"sizes": {}}
    try:
        for n in sizes:
            entry: dict = {"backends": {}}
            frame = random_footage(n, dim=dim, seed=n)
            library = root / f"lib{n}"
            online = n <= max_online_rows
            report = write_library(library, frame, f"bench-{n}", LibraryConfig(), online=online)
            entry["build_s"] = round(report.seconds, 2)
            entry["build_stages_s"] = {k: round(v, 2) for k, v in report.stage_seconds.items()}
            del frame
            for backend in BACKENDS:
                if backend != "numpy" and not online:
                    entry["backends"][backend] = {
                        "status": "skipped",
                        "reason": f"{n} rows > --max-online-rows {max_online_rows}: "
                        "Feast materialisation took too long to build this size",
                    }
                    continue
                print(f"  {n:>7} rows, {backend} ...", flush=True)
                entry["backends"][backend] = _bench_backend(
                    library, backend, repeats, budget_s, dim
                )
            results["sizes"][str(n)] = entry
            shutil.rmtree(library, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


def _table(results: dict) -> str:
    lines = [
        f"{'rows':>7} {'backend':<7} {'query p50':>10} {'query p99':>10} "
        f"{'b32 p50':>10} {'b32 p99':>10} {'b32/query':>10}  build",
    ]
    for n, entry in results["sizes"].items():
        for backend, r in entry["backends"].items():
            if r["status"] != "ok":
                lines.append(f"{n:>7} {backend:<7} skipped: {r['reason']}")
                continue
            lines.append(
                f"{n:>7} {backend:<7} "
                f"{r['query']['p50_ms']:>8.2f}ms {r['query']['p99_ms']:>8.2f}ms "
                f"{r['batch32']['p50_ms']:>8.1f}ms {r['batch32']['p99_ms']:>8.1f}ms "
                f"{r['batch32_per_query_p50_ms']:>8.2f}ms  {entry.get('build_s', '')} s"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument(
        "--budget-s", type=float, default=20.0, help="stop a measurement after this (min 5 calls)"
    )
    parser.add_argument(
        "--max-online-rows",
        type=int,
        default=100000,
        help="sizes above this get no Feast/Milvus build (materialisation is ~3 ms/row)",
    )
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    started = time.time()
    results = run(args.sizes, args.repeats, args.budget_s, args.max_online_rows, args.dim)
    ten_k = results["sizes"].get("10000", {}).get("backends", {})
    results.update(
        {
            "benchmark": "retrieval",
            "goal": f"p50 <= {GOAL_MS} ms for one 3-modality top-3 query at 10k (serving path)",
            "goal_met_by": sorted(
                b
                for b, r in ten_k.items()
                if r.get("status") == "ok" and r["query"]["p50_ms"] <= GOAL_MS
            ),
            "k": 3,
            "modalities": 3,
            "batch": 32,
            "dim": args.dim,
            "repeats": args.repeats,
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            },
            "wall_s": round(time.time() - started, 1),
        }
    )
    print(_table(results))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "retrieval.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
