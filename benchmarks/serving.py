"""BentoML serving under load: adaptive batching on vs off (sync ``/dub``), and the job path.

Why this exists: the serving issue asks adaptive batching for >= 2x the sync
throughput of batching off at an equal or better p99, with the same number of
concurrent users. That is a claim about the whole server (HTTP, base64, the queue,
``dub_many``), so it is measured on real ``dubops serve bento`` processes over
loopback, driven by locust as its own process (importing locust here, after
kserve/urllib3, dies in gevent's monkey-patching; DESIGN.md).

Two servers run side by side with the same model, threads and limits, one with
``serving.max_batch_size=1`` (off) and one with ``--batch`` clips and
``--latency-ms`` (on). Each gets the same warm-up (``--users`` concurrent requests,
not timed); then locust runs ``--users`` closed-loop users for ``--seconds``
against off, on, off, on ... (``--rounds`` each), so a busy machine slows both
alike. Every request is the same held-out clip with its own seed. Per run:
requests/s (= clips/s: one clip per request), seconds of speech made per second,
p50/p99 latency from the per-request log, and the mean batch the server formed
(``dubops_batch_size`` in ``/metrics``, before/after). Reported: per-mode medians
over rounds with their min-max spread, and on/off ratios; the goal is reported as
it came out, never tuned for.

Then ``--jobs`` jobs go to ``POST /jobs`` at once (on the batching-on server; jobs
do not batch) and are polled until done: jobs/s and p50/p99 submit-to-finish from
the server's own ``created``/``finished`` times.

    python benchmarks/serving.py                       # micro champion, ~6 min on 2 cores
    python benchmarks/serving.py --seconds 20 --rounds 1 --jobs 4     # a quick look
    python benchmarks/serving.py --model models:/dubbing@champion --data data/tiny \\
        --set tracking.tracking_uri=sqlite:///$PWD/mlruns.db

Both servers get ``serving.torch_threads=1`` unless ``--threads`` says otherwise:
with two OpenMP threads on a 2-core machine that something else keeps busy, one
descheduled thread stalls every parallel region, and a clip took 11.7 s instead of
0.5 s in-process; that measures the neighbour, not batching.

Without ``--model`` it serves the micro model the serving tests use (the micro
stages on a 48-clip synthetic corpus, registered as champion in a private MLflow
store), built once into ``--cache`` (default under the temp folder, never in git).
Writes ``benchmarks/results/serving.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOCUSTFILE = Path(__file__).with_name("locust_dubbing.py")
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "dubops-bench" / "serving"
MALLOC_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
MODES = ("off", "on")
JOB_STATES_DONE = ("succeeded", "failed", "cancelled")
# Users finish the request they are in at the deadline. Killed instead, their requests
# stay queued in the server (a client hanging up does not cancel a dub) and would load
# the other mode's next run.
STOP_TIMEOUT_S = 300
# "features": monitoring's record of the clip (drift and the request log), timed apart.
STEPS = ("read", "reason", "embed", "retrieve", "generate", "vocode", "features")
# The micro champion carries a drift reference (the tests' window), so both servers
# score drift online while they are measured (its cost is in their figures).


# -- the model and the clip ----------------------------------------------------------


def micro_champion(cache: Path) -> tuple[list[str], Path]:
    """The serving tests' micro champion in ``cache``: its ``--set`` values and corpus.

    Built once (corpus ~5 s, stages ~30-60 s on 2 cores) and reused while
    ``champion.json`` exists; it is written last, so a build cut short is redone
    from scratch rather than served half-made.
    """
    marker = cache / "champion.json"
    if marker.is_file() and json.loads(marker.read_text()).get("drift_window"):
        return json.loads(marker.read_text())["sets"], cache / "corpus"
    from dubops.config import load_config
    from dubops.data.synthetic import generate_corpus
    from tests.fixtures.served_model import SERVED_DRIFT_WINDOW, register_champion

    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    print(f"building the micro champion in {cache} (once) ...", flush=True)
    corpus = cache / "corpus"
    generate_corpus(load_config("tiny", overrides=["synth.clips=48", "synth.workers=1"]), corpus)
    champion = register_champion(corpus, cache, drift_window=SERVED_DRIFT_WINDOW)
    _write_atomic(
        marker,
        {"sets": champion.sets, "version": champion.version, "drift_window": SERVED_DRIFT_WINDOW},
    )
    return champion.sets, corpus


def held_out_clip(corpus: Path) -> dict[str, str]:
    """The first unseen-speaker test clip (else unseen-line): its media paths and script.

    The same clip the serving tests dub, so a result here and a test failure there
    talk about the same input.
    """
    from dubops.data.datasets import load_manifest
    from dubops.errors import InputError

    try:
        rows = load_manifest(corpus, ["test_s2"])
    except InputError:
        rows = load_manifest(corpus, ["test_s1"])
    row = rows.iloc[0]
    return {
        "clip_id": str(row.clip_id),
        "script": str(row.script),
        "video": str((corpus / row.video_path).resolve()),
        "prompt": str((corpus / row.prompt_audio_path).resolve()),
    }


def request_fields(clip: dict[str, str], seed: int) -> dict[str, Any]:
    """The JSON body of ``/dub`` and ``/jobs`` for ``clip`` (what the locustfile sends)."""
    import base64

    def b64(path: str) -> str:
        return base64.b64encode(Path(path).read_bytes()).decode()

    return {
        "script": clip["script"],
        "video_b64": b64(clip["video"]),
        "prompt_b64": b64(clip["prompt"]),
        "seed": seed,
    }


# -- servers -------------------------------------------------------------------------


@dataclass
class Server:
    """A ``dubops serve bento`` subprocess in its own process group (BentoML forks
    workers; stopping the group stops them all)."""

    name: str
    process: subprocess.Popen
    url: str
    log: Path
    sets: list[str]
    started: float  # time.monotonic() at spawn: readiness is timed from here

    @classmethod
    def start(
        cls, name: str, model: str, preset: str, sets: Sequence[str], workdir: Path
    ) -> Server:
        from dubops.serving.client import free_port

        port = free_port()
        state = workdir / f"state-{name}"
        log = workdir / f"server-{name}.log"
        args = [
            sys.executable, "-m", "dubops.cli.main", "serve", "bento",
            "--model", model, "--port", str(port), "--state-dir", str(state),
            "--preset", preset,
            *(a for s in sets for a in ("--set", s)),
        ]  # fmt: skip
        with log.open("ab") as handle:
            process = subprocess.Popen(
                args, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        return cls(name, process, f"http://127.0.0.1:{port}", log, list(sets), time.monotonic())

    def wait_ready(self, timeout: float) -> float:
        """Poll ``/readyz`` until 200; seconds since spawn (the model load included)."""
        import httpx

        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server {self.name} exited {self.process.returncode}:\n{self.tail()}"
                )
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return time.monotonic() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"server {self.name}: /readyz not 200 in {timeout:g} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        if not self.log.is_file():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM the group (BentoML drains), SIGKILL it if it lingers."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        except ProcessLookupError:
            pass


def stop_all(servers: Sequence[Server]) -> None:
    """Stop the servers side by side: each drain can take a while."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, len(servers))) as pool:
        list(pool.map(lambda server: server.stop(), servers))


def batch_histogram(url: str) -> tuple[float, float]:
    """``dubops_batch_size`` (sum, count) for the bento server, from ``/metrics``."""
    import re

    import httpx

    text = httpx.get(url + "/metrics", timeout=10).text
    found = {"sum": 0.0, "count": 0.0}
    pattern = re.compile(r'^dubops_batch_size_(sum|count)\{[^}]*server="bento"[^}]*\}\s+(\S+)')
    for line in text.splitlines():
        match = pattern.match(line)
        if match:
            found[match.group(1)] += float(match.group(2))
    return found["sum"], found["count"]


def warm_up(url: str, clip: dict[str, str], users: int, seed: int) -> float:
    """``users`` concurrent dubs, untimed: loads lazy parts and, with batching on, the
    batch shapes, so neither server's first timed run pays for its first call."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    def one(i: int) -> int:
        return httpx.post(
            url + "/dub", json=request_fields(clip, seed + i), timeout=600
        ).status_code

    began = time.monotonic()
    with ThreadPoolExecutor(users) as pool:
        codes = list(pool.map(one, range(users)))
    if any(c != 200 for c in codes):
        raise RuntimeError(f"warm-up on {url}: statuses {codes}")
    return time.monotonic() - began


# -- load ----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), ``q`` in 0..100."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def run_locust(
    server: Server, clip: dict[str, str], users: int, seconds: int, tag: str, seed: int
) -> dict[str, Any]:
    """One bounded locust run; figures from its per-request log (exact, not bucketed).

    Throughput is successful requests over the span from the first request's start to
    the last one's end: locust drops requests still in flight at its deadline, so
    dividing by ``--seconds`` would charge both modes for work they were not allowed
    to finish.
    """
    workdir = server.log.parent
    log = workdir / f"requests-{tag}.jsonl"
    prefix = workdir / f"locust-{tag}"
    env = {
        **os.environ,
        "DUBOPS_BENCH_VIDEO": clip["video"],
        "DUBOPS_BENCH_PROMPT": clip["prompt"],
        "DUBOPS_BENCH_SCRIPT": clip["script"],
        "DUBOPS_BENCH_LOG": str(log),
        "DUBOPS_BENCH_SEED": str(seed),
    }
    args = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", server.url,
        "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
        "--stop-timeout", str(STOP_TIMEOUT_S),
    ]  # fmt: skip
    batches_before = batch_histogram(server.url)
    with (workdir / f"locust-{tag}.log").open("wb") as out:
        done = subprocess.run(
            args,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=seconds + STOP_TIMEOUT_S + 120,
        )
    batches_after = batch_histogram(server.url)
    lines = [json.loads(x) for x in log.read_text().splitlines()] if log.is_file() else []
    ok = [x for x in lines if x["ok"]]
    if not ok:
        tail = (workdir / f"locust-{tag}.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(
            f"locust run {tag}: no successful request (rc {done.returncode})\n{tail}"
        )
    span = max(x["start"] + x["seconds"] for x in lines) - min(x["start"] for x in lines)
    latencies = [x["seconds"] for x in ok]
    batch_sum = batches_after[0] - batches_before[0]
    batch_count = batches_after[1] - batches_before[1]
    step_means = {
        step: round(statistics.fmean((x["step_seconds"] or {}).get(step, 0.0) for x in ok), 4)
        for step in STEPS
    }
    return {
        "tag": tag,
        "requests": len(lines),
        "ok": len(ok),
        "failures": len(lines) - len(ok),
        "failure_statuses": sorted({x["status"] for x in lines if not x["ok"]}),
        "span_seconds": round(span, 2),
        "requests_per_second": round(len(ok) / span, 4),
        "speech_seconds_per_second": round(sum(x["audio_seconds"] for x in ok) / span, 4),
        "p50_seconds": round(percentile(latencies, 50), 3),
        "p99_seconds": round(percentile(latencies, 99), 3),
        "max_seconds": round(max(latencies), 3),
        "mean_batch_size": round(batch_sum / batch_count, 2) if batch_count else None,
        "batches": int(batch_count),
        "mean_batch_size_seen_by_requests": round(
            statistics.fmean(x["batch_size"] or 0 for x in ok), 2
        ),
        "step_seconds_per_clip": step_means,
        "locust": _locust_summary(prefix),
        "locust_rc": done.returncode,
    }


def _locust_summary(prefix: Path) -> dict[str, Any]:
    """Locust's own aggregate (a cross-check of the per-request log; its percentiles are
    rounded to two significant digits)."""
    path = Path(f"{prefix}_stats.csv")
    if not path.is_file():
        return {}
    with path.open() as f:
        for row in csv.DictReader(f):
            if row.get("Name") == "Aggregated":
                return {
                    "requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "requests_per_second": round(float(row["Requests/s"]), 4),
                    "p50_ms": float(row["50%"]),
                    "p99_ms": float(row["99%"]),
                }
    return {}


def run_jobs(server: Server, clip: dict[str, str], count: int, seed: int, timeout: float) -> dict:
    """Submit ``count`` jobs back to back, poll until all are done; times from the server.

    The server stamps ``created`` and ``finished`` itself, so submit-to-finish does
    not depend on how often we poll.
    """
    import httpx

    began = time.time()
    ids = []
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for i in range(count):
            answer = client.post("/jobs", json=request_fields(clip, seed + i))
            if answer.status_code not in (200, 202):
                raise RuntimeError(f"POST /jobs: {answer.status_code} {answer.text[:300]}")
            ids.append(answer.json()["id"])
        submitted = time.time() - began
        final: dict[str, dict] = {}
        deadline = time.monotonic() + timeout
        while len(final) < count and time.monotonic() < deadline:
            for job_id in ids:
                if job_id not in final:
                    job = client.get(f"/jobs/{job_id}").json()
                    if job["state"] in JOB_STATES_DONE:
                        final[job_id] = job
            time.sleep(0.25)
    jobs = list(final.values())
    good = [j for j in jobs if j["state"] == "succeeded"]
    turnaround = [j["finished"] - j["created"] for j in good]
    waits = [j["started"] - j["created"] for j in good if j.get("started")]
    span = (max(j["finished"] for j in good) - min(j["created"] for j in good)) if good else 0
    return {
        "jobs": count,
        "succeeded": len(good),
        "failed": sum(j["state"] == "failed" for j in jobs),
        "unfinished": count - len(jobs),
        "submit_seconds": round(submitted, 3),
        "span_seconds": round(span, 2),
        "jobs_per_second": round(len(good) / span, 4) if span else None,
        "p50_seconds": round(percentile(turnaround, 50), 3),
        "p99_seconds": round(percentile(turnaround, 99), 3),
        "p50_queued_seconds": round(percentile(waits, 50), 3),
        "run_seconds_median": round(
            statistics.median(j["finished"] - j["started"] for j in good), 3
        )
        if good
        else None,
    }


# -- results -------------------------------------------------------------------------


def summarize(runs: list[dict]) -> dict[str, Any]:
    """Median over rounds of each figure, with its min-max spread."""
    out: dict[str, Any] = {"rounds": len(runs)}
    for key in (
        "requests_per_second", "speech_seconds_per_second", "p50_seconds", "p99_seconds",
        "mean_batch_size",
    ):  # fmt: skip
        values = [r[key] for r in runs if r[key] is not None]
        if values:
            out[key] = round(statistics.median(values), 4)
            out[f"{key}_spread"] = [min(values), max(values)]
    out["step_seconds_per_clip"] = {
        step: round(statistics.median(r["step_seconds_per_clip"][step] for r in runs), 4)
        for step in STEPS
    }
    steps = out["step_seconds_per_clip"]
    out["monitoring_share"] = round(steps["features"] / max(sum(steps.values()), 1e-9), 5)
    out["requests"] = sum(r["requests"] for r in runs)
    out["failures"] = sum(r["failures"] for r in runs)
    return out


def machine_facts(threads: int) -> dict[str, Any]:
    """What the figures depend on: CPU, cores, ISA, torch threads, malloc, versions."""
    import platform
    from importlib import metadata

    from dubops.run_environment import cpu_description

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "absent"

    return {
        "cpus": os.cpu_count(),
        **cpu_description(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "server_torch_threads": threads,
        "malloc": {v: os.environ.get(v, "-") for v in MALLOC_VARS},
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {p: version(p) for p in ("torch", "bentoml", "locust", "dubops")},
    }


def print_table(summary: dict[str, dict], runs: list[dict], jobs: dict | None) -> None:
    header = (
        f"{'run':<10} {'req/s':>7} {'speech s/s':>10} {'p50 s':>7} {'p99 s':>7} "
        f"{'batch':>6} {'ok':>5} {'fail':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        batch = f"{r['mean_batch_size']:.2f}" if r["mean_batch_size"] is not None else "-"
        print(
            f"{r['tag']:<10} {r['requests_per_second']:>7.3f} "
            f"{r['speech_seconds_per_second']:>10.3f} {r['p50_seconds']:>7.2f} "
            f"{r['p99_seconds']:>7.2f} {batch:>6} {r['ok']:>5} {r['failures']:>5}"
        )
    print("-" * len(header))
    for mode in MODES:
        s = summary[mode]
        lo, hi = s["requests_per_second_spread"]
        p_lo, p_hi = s["p99_seconds_spread"]
        print(
            f"{'median ' + mode:<10} {s['requests_per_second']:>7.3f} "
            f"{s['speech_seconds_per_second']:>10.3f} {s['p50_seconds']:>7.2f} "
            f"{s['p99_seconds']:>7.2f} {s.get('mean_batch_size', 0):>6.2f}   "
            f"(req/s {lo:.3f}-{hi:.3f}, p99 {p_lo:.2f}-{p_hi:.2f})"
        )
    print("\nper clip, seconds of each step (a request's share of its batch's step):")
    print(f"{'mode':<10} " + " ".join(f"{step:>9}" for step in STEPS))
    for mode in MODES:
        steps = summary[mode]["step_seconds_per_clip"]
        print(f"{mode:<10} " + " ".join(f"{steps[step]:>9.3f}" for step in STEPS))
    for mode in MODES:
        steps = summary[mode]["step_seconds_per_clip"]
        print(
            f"monitoring ({mode}): {1000 * steps['features']:.2f} ms of features per clip, "
            f"{100 * summary[mode]['monitoring_share']:.2f} % of its dub's steps (drift "
            "scoring runs on a background thread)"
        )
    if jobs:
        print(
            f"jobs: {jobs['succeeded']}/{jobs['jobs']} succeeded, "
            f"{jobs['jobs_per_second']} jobs/s, submit-to-finish p50 {jobs['p50_seconds']} s "
            f"p99 {jobs['p99_seconds']} s (run alone: {jobs['run_seconds_median']} s)"
        )


def _write_atomic(path: Path, data: dict) -> None:
    """Temp file then rename: a reader never sees half a result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model", help="what to serve (dubops serve --model); default: the micro champion"
    )
    parser.add_argument(
        "--data", type=Path, default=Path("data/tiny"),
        help="corpus to take the held-out clip from, with --model (default data/tiny)",
    )  # fmt: skip
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
        help="a --set for both servers (repeatable), e.g. tracking.tracking_uri=...",
    )  # fmt: skip
    parser.add_argument("--preset", default="tiny", help="the servers' --preset (default tiny)")
    parser.add_argument("--users", type=int, default=8, help="concurrent users (default 8)")
    parser.add_argument(
        "--seconds", type=int, default=45, help="each locust run's length (default 45)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="off/on pairs, interleaved (default 2)"
    )
    parser.add_argument(
        "--batch", type=int, default=8, help="max_batch_size with batching on (default 8)"
    )
    parser.add_argument(
        "--latency-ms", type=float, default=150.0,
        help="max_latency_ms with batching on (default 150)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=1,
        help="serving.torch_threads of both servers (default 1: see below)",
    )  # fmt: skip
    parser.add_argument(
        "--jobs", type=int, default=16, help="jobs for the job-path run (0: skip; default 16)"
    )
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE,
        help=f"the micro champion, built once, and the run logs (default {DEFAULT_CACHE})",
    )  # fmt: skip
    parser.add_argument(
        "--ready-timeout", type=float, default=300.0, help="seconds a server may take to load"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "serving.json"
    )
    args = parser.parse_args(argv)
    if min(args.users, args.seconds, args.rounds, args.batch, args.threads) < 1:
        parser.error("--users, --seconds, --rounds, --batch and --threads must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    began = time.time()
    machine = machine_facts(args.threads)
    if args.model is None:
        model, (model_sets, corpus) = "models:/dubbing@champion", micro_champion(args.cache)
    else:
        model, model_sets, corpus = args.model, [], args.data
    clip = held_out_clip(corpus)
    workdir = args.cache / "run"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)

    common = [*model_sets, f"serving.torch_threads={args.threads}", *args.sets]
    if args.users > 16:  # the default queue would answer 429 and measure shedding instead
        common.append(f"serving.max_queue={2 * args.users}")
    settings = {
        "off": [*common, "serving.max_batch_size=1"],
        "on": [
            *common,
            f"serving.max_batch_size={args.batch}",
            f"serving.max_latency_ms={args.latency_ms:g}",
        ],
    }
    servers: dict[str, Server] = {}
    runs: list[dict] = []
    jobs = None
    ready: dict[str, float] = {}
    warm: dict[str, float] = {}
    try:
        for mode in MODES:  # both load at once: startup is most of a short run's cost
            servers[mode] = Server.start(mode, model, args.preset, settings[mode], workdir)
        for mode in MODES:
            ready[mode] = round(servers[mode].wait_ready(args.ready_timeout), 1)
        print(f"servers ready ({ready}); logs in {workdir}", flush=True)
        seed = 1_000
        for mode in MODES:
            warm[mode] = round(warm_up(servers[mode].url, clip, args.users, seed), 1)
            seed += args.users
        for round_ in range(args.rounds):
            for mode in MODES:
                tag = f"{mode}-{round_ + 1}"
                print(f"locust {tag}: {args.users} users, {args.seconds} s ...", flush=True)
                run = run_locust(servers[mode], clip, args.users, args.seconds, tag, seed)
                run["mode"] = mode
                runs.append(run)
                seed += 100_000
        if args.jobs:
            print(f"jobs: {args.jobs} to {servers['on'].url}/jobs ...", flush=True)
            jobs = run_jobs(servers["on"], clip, args.jobs, seed, timeout=max(600, 60 * args.jobs))
    finally:
        stop_all(list(servers.values()))

    summary = {mode: summarize([r for r in runs if r["mode"] == mode]) for mode in MODES}
    on, off = summary["on"], summary["off"]
    ratio = round(on["requests_per_second"] / off["requests_per_second"], 2)
    p99_ratio = round(on["p99_seconds"] / off["p99_seconds"], 2)
    goal = {
        "wanted": "batching on >= 2x the requests/s of off, at an equal or lower p99",
        "throughput_ratio": ratio,
        "p99_ratio": p99_ratio,
        "throughput_holds": ratio >= 2.0,
        "p99_holds": p99_ratio <= 1.0,
        "holds": ratio >= 2.0 and p99_ratio <= 1.0,
    }
    print(
        f"\nmodel {model}, clip {clip['clip_id']}, {args.users} users x {args.seconds} s x "
        f"{args.rounds} rounds per mode, batch {args.batch} / {args.latency_ms:g} ms, "
        f"{args.threads} torch threads, {machine.get('cpu_model', '?')} "
        f"({machine['cpu_cores']} cores, {machine['cpu_isa']})\n"
    )
    print_table(summary, runs, jobs)
    print(
        f"\non/off: {ratio}x requests/s, p99 x{p99_ratio} -> goal "
        f"{'holds' if goal['holds'] else 'does not hold'}"
    )
    result = {
        "benchmark": "serving",
        "model": model,
        "clip": {k: clip[k] for k in ("clip_id", "script")},
        "settings": {
            "users": args.users,
            "seconds_per_run": args.seconds,
            "rounds": args.rounds,
            "server": "dubops serve bento",
            "preset": args.preset,
            "sets": {
                m: [s for s in v if not s.startswith("tracking.")] for m, v in settings.items()
            },
            "warm_up": f"{args.users} concurrent requests per server, not timed",
            "order": "off, on interleaved round by round",
            "load": "locust, closed loop (no wait), one held-out clip, a new seed per request",
        },
        "machine": machine,
        "ready_seconds": ready,
        "warm_up_seconds": warm,
        "note": "requests/s = successful requests / (last end - first start) of the run; one clip "
        "per request, so clips/s = requests/s; speech s/s = seconds of speech made per wall "
        "second; p50/p99 from every successful request's client-side latency; mean batch = "
        "delta of dubops_batch_size sum/count in /metrics over the run; per-mode figures are "
        "medians over rounds, spread = min-max; 'locust' is locust's own aggregate, "
        "which stops counting at its deadline (requests finished in the stop grace are in "
        "ours only) and rounds its percentiles",
        "summary": summary,
        "goal": goal,
        "runs": runs,
        "jobs": jobs,
        "wall_seconds": round(time.time() - began, 1),
    }
    _write_atomic(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
