"""Graph − no graph over many paired trainings: train, dub and score, resumable.

Why this exists: on the tiny corpus one graph-stage training's EMO-ACC differs
from the next seed's by up to 0.2, so graph − no graph needs tens of paired
trainings before 2 standard errors can mean anything (issue 23,
docs/results/emotion.md "The ControlNet held fixed"). This runs the series the
documented way (``dubops train graph`` with and without ``--ablation
no-graph``, then ``dubops dub --ablation no-conclusion``), one seed's pair at a
time, both halves side by side, and skips every pair already
dubbed, so an interrupted series continues where it stopped. Then
``emotion_accuracy.py`` scores the finished pairs, paired by seed.

    python benchmarks/graph_pairs.py --data data/hard --controlnet CN --library L \\
        --extractors E --work outputs/pairs --seeds 0-27 \\
        --set graph.conclusion_drop_prob=1.0 --set graph.training.total_steps=200 \\
        --set 'graph.frozen=[visual, conclusion, controlnet, duration]' \\
        --out benchmarks/results/emotion_accuracy_graph_pairs.json
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from shlex import quote

ROOT = Path(__file__).resolve().parents[1]
ARMS = {"graph": [], "no-graph": ["--ablation", "no-graph"]}


def seed_range(text: str) -> list[int]:
    """``0-27`` or ``3`` -> the seeds, in order."""
    first, _, last = text.partition("-")
    try:
        return list(range(int(first), int(last or first) + 1))
    except ValueError:
        raise SystemExit(f"--seeds {text!r}: give FIRST-LAST, e.g. 0-27") from None


def folder(args: argparse.Namespace, sub: str, arm: str, seed: int) -> Path:
    """Where one arm's run (``train``) or dubs (``dub``) of one seed live."""
    return args.work / sub / f"{arm}_s{seed}"


def pair_commands(args: argparse.Namespace, seed: int) -> dict[str, str]:
    """Per arm, the shell line that trains then dubs one seed (logs beside the folders)."""
    data, cn, lib, ext = (
        quote(str(p)) for p in (args.data, args.controlnet, args.library, args.extractors)
    )
    sets = " ".join(f"--set {quote(s)}" for s in [*args.set, f"graph.training.seed={seed}"])
    lines = {}
    for arm, extra in ARMS.items():
        run = quote(str(folder(args, "train", arm, seed)))
        dub = quote(str(folder(args, "dub", arm, seed)))
        lines[arm] = (
            f"dubops train graph --data {data} --controlnet {cn} --library {lib} --no-mlflow "
            f"--out {run} {sets} {' '.join(extra)} > {run}.log 2>&1 && "
            f"dubops dub --model {run} --library {lib} --extractors {ext} --data {data} "
            f"--ablation no-conclusion --out {dub} > {dub}.log 2>&1 && touch {dub}.done"
        )
    return lines


def run_pair(args: argparse.Namespace, seed: int) -> bool:
    """Train and dub both arms of ``seed`` side by side; True when both finished."""
    for arm in ARMS:  # a half-written run starts over
        for sub in ("train", "dub"):
            shutil.rmtree(folder(args, sub, arm, seed), ignore_errors=True)
    jobs = [subprocess.Popen(line, shell=True) for line in pair_commands(args, seed).values()]
    return all(job.wait() == 0 for job in jobs)


def done(args: argparse.Namespace, seed: int) -> bool:
    return all(folder(args, "dub", arm, seed).with_suffix(".done").is_file() for arm in ARMS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the corpus (train and test)")
    parser.add_argument("--controlnet", type=Path, required=True, help="a controlnet folder")
    parser.add_argument("--library", type=Path, required=True, help="a built footage library")
    parser.add_argument("--extractors", type=Path, required=True, help="its extractors")
    parser.add_argument("--work", type=Path, required=True, help="where runs and dubs go")
    parser.add_argument("--seeds", default="0-5", help="FIRST-LAST training seeds (0-5)")
    parser.add_argument("--set", action="append", default=[], help="a config override")
    parser.add_argument("--out", type=Path, help="the scores' JSON (default: print only)")
    parser.add_argument("--score-only", action="store_true", help="score the finished pairs")
    args = parser.parse_args(argv)
    for name in ("data", "controlnet", "library", "extractors"):
        if not getattr(args, name).exists():
            raise SystemExit(f"--{name} {getattr(args, name)} does not exist")
    for sub in ("train", "dub"):
        (args.work / sub).mkdir(parents=True, exist_ok=True)
    seeds = seed_range(args.seeds)
    for seed in seeds:
        if args.score_only or done(args, seed):
            continue
        print(f"seed {seed}: training and dubbing both arms", flush=True)
        if not run_pair(args, seed):
            raise SystemExit(f"seed {seed} failed; see the logs under {args.work}")
    finished = [s for s in seeds if done(args, s)]
    if not finished:
        raise SystemExit("no finished pair to score yet")
    preds = [
        f"{arm}=" + ",".join(str(folder(args, "dub", arm, s)) for s in finished) for arm in ARMS
    ]
    score = [sys.executable, str(ROOT / "benchmarks" / "emotion_accuracy.py")]
    score += ["--data", str(args.data), "--against", "no-graph"]
    score += [a for p in preds for a in ("--pred", p)]
    score += ["--out", str(args.out)] if args.out else ["--out", str(args.work / "scores.json")]
    print(f"scoring {len(finished)} pair(s): seeds {finished}", flush=True)
    return subprocess.call(score)


if __name__ == "__main__":
    sys.exit(main())
