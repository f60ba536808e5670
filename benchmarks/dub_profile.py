"""Where one dub's time and memory go, step by step, for 3 s, 10 s and 60 s clips.

Why this exists: the speed issue measured 3 s clips at 13-31 s of generation and a
60 s clip at 505 s with 1.4 GB resident, and asks for a per-step profile before
anything is made faster. Each run is its own process (so peak memory is the
clip's, not the previous one's): it loads the model (timed), warms it up with one
short dub (as a server does), then dubs the clip once through the steps a
:class:`DubbingPipeline` dub runs, each timed on its own:

read, reason, embed, retrieve (the pipeline's own steps); phonemize (script to
phoneme ids), prompt mel, lip alignment (mouth tracks on the full-resolution
video), durations + plan (the rest of ``SpeechGenerator.prepare``: the duration
predictor, slot fitting, conditions), sampling, vocoder, mux.

Clips longer than a corpus clip are corpus clips strung together (frames and
scripts), so the script keeps its speaking rate. Runs are interleaved across
lengths round by round (3, 10, 60, 3, 10, 60 ...; the 60 s clip in the first
``--long-rounds`` rounds), and each figure is the median with its min-max
spread. Records the CPU, cores, instruction sets, torch threads and malloc
settings. Sampling includes the pieces a long clip is cut into
(``speech.pieces``); ``--nfe`` sets the sampler's steps for every dub.

    python benchmarks/dub_profile.py --model models:/dubbing@champion --data data/tiny

``--before CHECKOUT`` (a clone of another commit with its own ``.venv``) profiles that
version too, its run and ours alternating on each clip, and reports the speed-up as
the median over clip pairs of before / after.

Writes ``benchmarks/results/dub_profile.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STEPS = (
    "load",
    "read",
    "reason",
    "embed",
    "retrieve",
    "phonemize",
    "prompt_mel",
    "lip_alignment",
    "durations_plan",
    "sampling",
    "vocoder",
    "mux",
)
MALLOC_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def strung_clip(
    data: Path, rows: list[dict], seconds: float, path: Path, exact: bool = True
) -> tuple[Any, int]:
    """A request of ``seconds`` of video written to ``path`` and the rows it used: the
    clips of ``rows`` strung together in order, their scripts joined, the first clip's
    timbre prompt. ``exact`` cuts the video at ``seconds`` (the script keeps the last
    clip's words); otherwise every used clip stays whole."""
    from dubops.inference.corpus import row_request
    from dubops.video import read_video, write_video

    first = row_request(data, rows[0])
    frames, scripts, fps, used = [], [], 25.0, 0
    for row in rows:
        request = row_request(data, row)
        clip, fps = read_video(request.video)
        frames.extend(clip)
        scripts.append(request.script.rstrip(".!?") + ".")
        used += 1
        if len(frames) >= seconds * fps:
            break
    keep = round(seconds * fps) if exact else len(frames)
    write_video(path, np.stack(frames[:keep]), fps)
    update = {"video": path, "script": " ".join(scripts), "clip_id": None}
    return first.model_copy(update=update), used


def long_request(data: Path, seconds: float, folder: Path) -> Any:
    """A request of ``seconds`` of video in ``folder`` (made once, then reused): held-out
    clips strung together (:func:`strung_clip`)."""
    from dubops.data.datasets import load_manifest

    path = folder / f"clip-{seconds:g}s.mp4"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        from dubops.inference.request import DubRequest

        return DubRequest(**json.loads(meta.read_text()))
    rows = load_manifest(data, ["test_s1", "test_s2"]).to_dict("records")
    request = strung_clip(data, rows, seconds, path)[0]
    meta.write_text(request.model_dump_json())
    return request


def _timed(times: dict[str, float], name: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    tick = time.perf_counter()
    out = call(*args, **kwargs)
    times[name] = times.get(name, 0.0) + time.perf_counter() - tick
    return out


def profile_one(
    model: str,
    data: Path,
    seconds: float,
    sets: list[str],
    nfe: int | None = None,
    clips: Path | None = None,
) -> dict[str, Any]:
    """One process's run: load, warm up, then one dub of a ``seconds`` clip, step by step.

    ``nfe`` overrides the model's sampler steps (the request's ``nfe``), warm-up included.
    ``clips`` holds the strung clips made beforehand (by the parent process, so the
    peak memory is the dub's, not the clip's making).
    """
    import torch

    from dubops.config import load_config
    from dubops.inference.loading import load_pipeline
    from dubops.inference.request import DubRequest
    from dubops.speech.inputs import prepare_prompt
    from dubops.speech.lip_align import mouth_tracks

    config = load_config("tiny", overrides=sets)
    times: dict[str, float] = {}
    pipeline, _ = _timed(times, "load", load_pipeline, config, model)
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    folder = clips or Path(tempfile.mkdtemp(prefix="dubops-profile-"))
    pipeline.dub(long_request(data, 1.0, folder).model_copy(update={"nfe": nfe}))
    rss_warm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    request: DubRequest = long_request(data, seconds, folder).model_copy(
        update={"mp4": True, "nfe": nfe}
    )
    reqs = [request]
    media = _timed(times, "read", pipeline.read_media, reqs)
    conclusions = _timed(times, "reason", pipeline.reason, reqs, media)
    vectors = _timed(times, "embed", pipeline.embed, reqs, media)
    retrieval = _timed(times, "retrieve", pipeline.retrieve, reqs, vectors)
    gen, clip = pipeline.generator, media[0]
    # The parts of prepare, each timed alone; prepare itself then runs them all again,
    # so "durations_plan" is prepare's time less those parts.
    parts: dict[str, float] = {}
    _timed(parts, "phonemize", gen.phoneme_ids, request.script)
    _timed(
        parts,
        "prompt_mel",
        lambda: gen.mel(prepare_prompt(clip.prompt, clip.prompt_rate, gen.audio.sample_rate)),
    )
    tracker = gen.speech.lip_align.tracker
    if tracker != "none":
        _timed(parts, "lip_alignment", mouth_tracks, clip.frames, tracker)
    prepared: dict[str, float] = {}
    plans = _timed(prepared, "prepare", pipeline.plan, reqs, media, conclusions, retrieval)
    times |= parts
    times["durations_plan"] = max(prepared["prepare"] - sum(parts.values()), 0.0)
    mels = _timed(times, "sampling", gen.sample, plans)
    waves = _timed(times, "vocoder", lambda: [gen.vocode(m) for m in mels])
    _timed(times, "mux", pipeline.mux, reqs, waves)
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    audio = len(waves[0]) / pipeline.sample_rate
    dub = sum(v for k, v in times.items() if k != "load")
    pipeline.close()
    if clips is None:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "seconds": seconds,
        "audio_seconds": round(audio, 3),
        "steps": {k: round(v, 4) for k, v in times.items()},
        "dub_seconds": round(dub, 3),
        "real_time_factor": round(dub / audio, 3),
        "rss_mb": {"loaded": round(rss_loaded), "warm": round(rss_warm), "peak": round(rss_peak)},
        "torch_threads": torch.get_num_threads(),
    }


def machine(threads: int) -> dict[str, Any]:
    from dubops.run_environment import cpu_description

    return {
        **cpu_description(),
        "torch_threads": threads,
        "malloc": {v: os.environ.get(v, "-") for v in MALLOC_VARS},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _summary(rs: list[dict]) -> dict[str, Any]:
    dubs = [r["dub_seconds"] for r in rs]
    return {
        "runs": len(rs),
        "steps_median": {
            s: round(statistics.median(r["steps"].get(s, 0.0) for r in rs), 3) for s in STEPS
        },
        "dub_seconds": [min(dubs), statistics.median(dubs), max(dubs)],
        "real_time_factor_median": statistics.median(r["real_time_factor"] for r in rs),
        "real_time_factor_range": [
            min(r["real_time_factor"] for r in rs),
            max(r["real_time_factor"] for r in rs),
        ],
        "peak_rss_mb_median": statistics.median(r["rss_mb"]["peak"] for r in rs),
        "loaded_rss_mb_median": statistics.median(r["rss_mb"]["loaded"] for r in rs),
    }


def _print_table(title: str, summary: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}\n{'step':<16}" + "".join(f"{k + ' s clip':>14}" for k in summary))
    for step in STEPS:
        print(
            f"{step:<16}" + "".join(f"{v['steps_median'][step]:>14.3f}" for v in summary.values())
        )
    for label, key in (
        ("RTF (dub)", "real_time_factor_median"),
        ("peak RSS MB", "peak_rss_mb_median"),
    ):
        print(f"{label:<16}" + "".join(f"{v[key]:>14}" for v in summary.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models:/dubbing@champion")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "tiny")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--lengths", type=float, nargs="+", default=[3.0, 10.0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--long", type=float, default=60.0, help="0: skip the long clip")
    parser.add_argument("--long-rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--nfe", type=int, help="sampler steps for every dub (default: the model's own)"
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="a checkout of the version to compare with (its own .venv): each run of it "
        "alternates with one of this tree on the same clip; the model's own settings",
    )
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--clips", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/dub_profile.json")
    args = parser.parse_args()
    if args.one is not None:
        import torch

        torch.set_num_threads(args.threads)
        run = profile_one(args.model, args.data, args.one, args.sets, args.nfe, args.clips)
        print(json.dumps(run))
        return
    common = ["--model", args.model, "--data", str(args.data), "--threads", str(args.threads)]
    common += [a for s in args.sets for a in ("--set", s)]
    clips = Path(tempfile.mkdtemp(prefix="dubops-profile-"))
    for seconds in {1.0, *args.lengths, *([args.long] if args.long else [])}:
        long_request(args.data, seconds, clips)
    systems = {"after": [sys.executable, __file__, *common, "--clips", str(clips)]}
    systems["after"] += ["--nfe", str(args.nfe)] if args.nfe else []
    if args.before:
        before = args.before.resolve()
        script = [str(before / ".venv/bin/python"), str(before / "benchmarks/dub_profile.py")]
        systems = {"before": [*script, *common], **systems}
    # Round by round (3, 10, 60, 3, 10, 60 ...), the long clip in the first long-rounds;
    # on each clip the systems in turn.
    plan = [
        x
        for r in range(args.rounds)
        for x in [*args.lengths, *([args.long] if args.long and r < args.long_rounds else [])]
    ]
    runs: dict[str, dict[float, list[dict]]] = {name: {} for name in systems}
    for seconds in plan:
        for name, command in systems.items():
            done = subprocess.run(
                [*command, "--one", str(seconds)], capture_output=True, text=True, check=False
            )
            if done.returncode:
                raise SystemExit(f"{name}: {seconds} s run failed:\n{done.stderr[-3000:]}")
            run = json.loads(done.stdout.strip().splitlines()[-1])
            runs[name].setdefault(seconds, []).append(run)
            print(
                f"{name:>6} {seconds:>5.0f} s clip: dub {run['dub_seconds']} s, "
                f"RTF {run['real_time_factor']}, peak {run['rss_mb']['peak']} MB",
                flush=True,
            )
    summaries = {
        name: {str(k): _summary(v) for k, v in by_length.items()}
        for name, by_length in runs.items()
    }
    for name, summary in summaries.items():
        _print_table(name, summary)
    result: dict[str, Any] = {
        "benchmark": "dub_profile",
        "model": args.model,
        "nfe": args.nfe,
        "machine": machine(args.threads),
        "summary": summaries["after"],
        "runs": {str(k): v for k, v in runs["after"].items()},
    }
    if args.before:
        ratios = {}
        for length, rs in runs["after"].items():
            pairs = zip(runs["before"][length], rs, strict=True)
            ratios[str(length)] = round(
                statistics.median(b["dub_seconds"] / a["dub_seconds"] for b, a in pairs), 2
            )
        print("\nspeed-up (median of before/after per clip pair): " + json.dumps(ratios))
        result |= {
            "before": {
                "checkout": str(args.before),
                "commit": _commit(args.before),
                "summary": summaries["before"],
                "runs": {str(k): v for k, v in runs["before"].items()},
            },
            "after_commit": _commit(ROOT),
            "speedup": ratios,
        }
    from dubops.fileio import write_json

    write_json(args.out, result)
    shutil.rmtree(clips, ignore_errors=True)
    print(f"wrote {args.out}")


def _commit(repo: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
