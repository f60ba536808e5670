"""EMO-ACC of dubbed folders, paired against a reference system, and the prosody behind it.

Why this exists: issue 23 asks whether the generated speech carries the clip's
emotion and whether each lever (prompt context, guidance, the graph) moves it
beyond the noise of 119 clips. The evaluation's classifier
(:mod:`dubops.evaluation.emotion`) grades every folder on the same clips; each
system gets EMO-ACC with its standard error, the paired difference from the
``--against`` system (per clip, so the shared clip difficulty cancels) with its
standard error, and, per emotion, how far the generated speech moves log-F0 and
energy away from its timbre prompt next to how far the ground truth does. The
last part says *what* is missing when accuracy is low.

    python benchmarks/emotion_accuracy.py --data data/tiny \\
        --pred self=outputs/emo/dub/self --pred prompt=outputs/emo/dub/prompt --against self

A second held-out corpus (``dubops data synth --seed 1``: other clips, none
trained on) pools with the first, graded by the first corpus's classifier;
each system then names its folders for both corpora (clip ids are distinct)::

    python benchmarks/emotion_accuracy.py --data data/tiny \\
        --data data/tiny_seed1=train,val,test_s1,test_s2 --classifier-data data/tiny \\
        --pred graph=DUB_TEST,DUB_HELDOUT --pred no-graph=... --against graph

Several folders per system are takes: trainings with other seeds, or dubs with
other sampling seeds. With as many takes on both sides of a difference, the k-th
folder of each pairs with the k-th (name them in seed order), and the spread of the
per-take differences joins the standard error (:mod:`dubops.evaluation.paired`): one
training's luck is then part of the error bar, not only the clips'.

Writes ``benchmarks/results/emotion_accuracy.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# utterance_features order: log-F0 mean, log-F0 spread, energy mean, energy spread, ...
_PITCH, _ENERGY = 0, 2


def _named(spec: str) -> tuple[str, list[Path]]:
    """``NAME=DIR[,DIR...]``: several folders are the same system dubbed with other seeds."""
    name, sep, paths = spec.partition("=")
    if not sep:
        return Path(spec).name, [Path(spec)]
    return name, [Path(p) for p in paths.split(",") if p]


def _clip_scores(classifier, wave: np.ndarray, prompt_f: np.ndarray, words: int) -> dict:
    from dubops.evaluation.emotion import combine_features, utterance_features
    from dubops.sample_rates import ANALYSIS_SAMPLE_RATE as SR

    own = utterance_features(wave, SR, words)
    probs = classifier.predict_proba_features(combine_features(own, prompt_f))[0]
    return {
        "predicted": classifier.classes[int(np.argmax(probs))],
        "pitch_delta": float(own[_PITCH] - prompt_f[_PITCH]),
        "energy_delta": float(own[_ENERGY] - prompt_f[_ENERGY]),
    }


def _corpus(spec: str, default_splits: list[str]) -> tuple[Path, list[str]]:
    """``DIR`` or ``DIR=SPLIT,SPLIT``: a corpus and the splits scored from it."""
    path, sep, splits = spec.partition("=")
    return Path(path), ([x for x in splits.split(",") if x] if sep else default_splits)


def score_folders(
    corpora: list[tuple[Path, list[str]]],
    folders: dict[str, list[Path]],
    classifier_data: Path | None = None,
) -> dict:
    """Per system and clip: predicted emotion, correctness and the prosody deltas.

    A system dubbed with several seeds scores each clip by its share of correct
    seeds (and the mean deltas), so the sampling's noise averages out per clip.
    With several corpora (clip ids are distinct) a system's folders may hold
    either corpus's clips: each clip reads the folders holding it, and every
    clip of a system must be found in as many folders. ``classifier_data``
    names the corpus whose classifier grades (default: the first corpus), so
    a second held-out corpus is graded as the first one is.
    """
    from dubops.audio import read_wav
    from dubops.data.datasets import load_manifest
    from dubops.data.layout import CorpusLayout
    from dubops.evaluation.emotion import load_or_train, utterance_features
    from dubops.sample_rates import ANALYSIS_SAMPLE_RATE as SR

    classifier = load_or_train(classifier_data or corpora[0][0])
    rows = {name: [] for name in ["ground-truth", *folders]}
    takes: dict[str, set[int]] = {name: set() for name in folders}
    for data, splits in corpora:
        layout = CorpusLayout(data)
        for row in load_manifest(data, splits).itertuples(index=False):
            prompt, _ = read_wav(layout.resolve(row.prompt_audio_path), SR)
            prompt_f = utterance_features(prompt, SR, len(row.prompt_text.split()))
            waves = {"ground-truth": [layout.resolve(row.audio_path)]}
            for name, paths in folders.items():
                found = [
                    f / f"{row.clip_id}.wav" for f in paths if (f / f"{row.clip_id}.wav").is_file()
                ]
                if not found:
                    raise SystemExit(f"--pred {name}: no folder holds {row.clip_id}.wav; dub it")
                takes[name].add(len(found))
                waves[name] = found
            for name, paths in waves.items():
                scores = []
                for path in paths:
                    wave, _ = read_wav(path, SR)
                    scores.append(_clip_scores(classifier, wave, prompt_f, len(row.script.split())))
                rows[name].append(
                    {
                        "clip_id": row.clip_id,
                        "emotion": row.emotion,
                        "predicted": [s["predicted"] for s in scores],
                        "correct": float(np.mean([s["predicted"] == row.emotion for s in scores])),
                        "pitch_delta": float(np.mean([s["pitch_delta"] for s in scores])),
                        "energy_delta": float(np.mean([s["energy_delta"] for s in scores])),
                    }
                )
    uneven = {name: sorted(n) for name, n in takes.items() if len(n) > 1}
    if uneven:
        raise SystemExit(
            f"--pred: clips found in unequal numbers of folders {uneven}; dub them all"
        )
    return rows


def mean_se(values: list[float]) -> tuple[float, float]:
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), float("nan")
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x)))


def _takes(clips: list[dict]) -> np.ndarray:
    """``(takes, clips)``: 1 where the k-th folder's dub of a clip was classified right."""
    return np.array([[p == c["emotion"] for p in c["predicted"]] for c in clips], float).T


def _difference(clips: list[dict], reference: list[dict]):
    """``clips − reference`` per clip; with as many takes on both sides, take k pairs with take k
    (the same training or sampling seed) and the take-to-take spread joins the SE."""
    from dubops.evaluation.paired import paired_difference

    if [c["clip_id"] for c in clips] != [c["clip_id"] for c in reference]:
        raise SystemExit("systems were scored on different clips; dub the same ones")
    mine, theirs = _takes(clips), _takes(reference)
    if mine.shape != theirs.shape:  # unequal takes: each clip's share of correct takes
        mine, theirs = mine.mean(axis=0), theirs.mean(axis=0)
    return paired_difference(mine, theirs)


def summarise(rows: dict, against: str | None) -> dict:
    from dubops.data.schema import EMOTIONS

    out = {}
    for name, clips in rows.items():
        acc, se = mean_se([float(c["correct"]) for c in clips])
        seeds = len(clips[0]["predicted"]) if clips else 0
        entry = {"emo_acc": acc, "se": se, "clips": len(clips), "seeds": seeds, "per_emotion": {}}
        if against and name != against:
            entry["minus_" + against] = _difference(clips, rows[against]).as_dict()
        for emotion in EMOTIONS:
            mine = [c for c in clips if c["emotion"] == emotion]
            if not mine:
                continue
            entry["per_emotion"][emotion] = {
                "accuracy": float(np.mean([c["correct"] for c in mine])),
                "pitch_delta": float(np.mean([c["pitch_delta"] for c in mine])),
                "energy_delta": float(np.mean([c["energy_delta"] for c in mine])),
            }
        out[name] = entry
    return out


def _take_note(d: dict) -> str:
    """With several takes: the clip and take parts of the SE, and each take's difference."""
    if d["takes"] < 2:
        return ""
    takes = ", ".join(f"{x:+.3f}" for x in d["per_take"])
    return f" (clips {d['se_clips']:.3f}, {d['takes']} takes {d['se_takes']:.3f}: {takes})"


def print_tables(summary: dict, against: str | None) -> None:
    head = "| system | EMO-ACC ± SE |" + (f" minus {against} ± SE |" if against else "")
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for name, s in summary.items():
        line = f"| {name} | {s['emo_acc']:.3f} ± {s['se']:.3f} |"
        if against:
            d = s.get("minus_" + against)
            line += f" {d['diff']:+.3f} ± {d['se']:.3f}{_take_note(d)} |" if d else " |"
        print(line)
    print("\nlog-F0 / energy (dB) change from the timbre prompt, per emotion:")
    emotions = list(next(iter(summary.values()))["per_emotion"])
    print("| system | " + " | ".join(emotions) + " |")
    print("|" + " --- |" * (len(emotions) + 1))
    for name, s in summary.items():
        per = s["per_emotion"]
        cells = [f"{per[e]['pitch_delta']:+.2f} / {per[e]['energy_delta']:+.1f}" for e in emotions]
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        action="append",
        help="corpus folder, or DIR=SPLIT,SPLIT with its own splits (repeat to pool held-out "
        "corpora; default data/tiny)",
    )
    parser.add_argument(
        "--pred",
        action="append",
        required=True,
        help="NAME=FOLDER[,FOLDER...] of <clip_id>.wav; several are takes (training or sampling "
        "seeds), named in the same seed order for every system (repeat)",
    )
    parser.add_argument("--against", help="NAME of the system the others are paired against")
    parser.add_argument("--split", action="append", help="splits (default test_s1 test_s2)")
    parser.add_argument(
        "--classifier-data",
        type=Path,
        help="corpus whose emotion classifier grades (default: the first --data): a held-out "
        "corpus (e.g. `dubops data synth --seed 1`) graded by the first one's classifier",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "emotion_accuracy.json"
    )
    args = parser.parse_args()
    folders = dict(_named(p) for p in args.pred)
    if args.against and args.against not in folders and args.against != "ground-truth":
        raise SystemExit(f"--against {args.against}: name one of {sorted(folders)}")
    corpora = [_corpus(c, args.split or ["test_s1", "test_s2"]) for c in args.data or ["data/tiny"]]
    rows = score_folders(corpora, folders, args.classifier_data)
    summary = summarise(rows, args.against)
    print_tables(summary, args.against)
    from dubops.fileio import write_json
    from dubops.run_environment import cpu_description

    record = {
        "corpora": {str(path): splits for path, splits in corpora},
        "classifier_data": str(args.classifier_data or corpora[0][0]),
        "systems": {k: [str(p) for p in v] for k, v in folders.items()},
        "summary": summary,
    }
    # No timings here, but the dubs came from this machine kind: say which.
    write_json(args.out, {**record, "machine": cpu_description()})
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
