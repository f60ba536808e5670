"""Long clips in pieces against in one pass: intelligibility, voice, time and memory.

Why this exists: cutting a long clip at word boundaries (``speech.pieces``) makes
the sampler's cost linear and its memory flat; this checks what it does to the
speech. Long clips are held-out clips strung together (their frames and
scripts, the first clip's voice, as ``dub_profile.py`` makes them), each dubbed
through the served path once per setting, interleaved clip by clip: in pieces of
at most ``--max-seconds`` and in one pass. Scored per clip: WER of the ASR the
evaluation uses (PocketSphinx with the corpus LM) against the joined script,
speaker similarity to the prompt, sampling seconds; and the paired differences
with their standard errors.

    python benchmarks/pieces_quality.py --model models:/dubbing@champion --data data/tiny

Writes ``benchmarks/results/pieces_quality.json``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def strung_requests(data: Path, seconds: float, count: int, folder: Path) -> list:
    """``count`` clips of ``seconds``, each made of consecutive held-out clips."""
    from dub_profile import strung_clip

    from dubops.data.datasets import load_manifest

    rows = load_manifest(data, ["test_s1", "test_s2"]).to_dict("records")
    requests, start = [], 0
    for index in range(count):
        path = folder / f"long-{index}.mp4"
        request, used = strung_clip(data, rows[start:], seconds, path, exact=False)
        requests.append(request)
        start += used
    return requests


def main() -> None:
    import torch

    from dubops.audio import resample
    from dubops.config import load_config
    from dubops.data.layout import CorpusLayout
    from dubops.data.report.corpus_lm import training_text
    from dubops.evaluation.asr import build_recognizer, wer_of
    from dubops.evaluation.speaker import SpeakerEncoder, speaker_similarity
    from dubops.fileio import write_json
    from dubops.inference.loading import load_pipeline
    from dubops.run_environment import cpu_description
    from dubops.speech.generator import sample_plans
    from dubops.speech.inputs import slot_frames

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models:/dubbing@champion")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "tiny")
    parser.add_argument("--seconds", type=float, default=24.0, help="length of each long clip")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=8.0, help="the piece limit")
    parser.add_argument("--nfe", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/pieces_quality.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import pandas as pd

    manifest = pd.read_parquet(CorpusLayout(args.data).manifest)
    asr = build_recognizer("sphinx", list(training_text(manifest)))
    encoder = SpeakerEncoder()
    folder = Path(tempfile.mkdtemp(prefix="dubops-pieces-"))
    requests = [
        r.model_copy(update={"nfe": args.nfe})
        for r in strung_requests(args.data, args.seconds, args.clips, folder)
    ]
    settings = {"pieces": args.max_seconds, "one pass": None}
    scores: dict[str, dict[str, list[float]]] = {
        name: {"errors": [], "spk_sim": [], "sampling_s": []} for name in settings
    }
    words = []
    with load_pipeline(load_config("tiny"), args.model)[0] as pipeline:
        gen = pipeline.generator
        pipeline.dub(requests[0])  # warm-up (the reasoner's draft learns its first answer)
        for index, request in enumerate(requests):
            reqs = [request]
            media = pipeline.read_media(reqs)
            conclusions = pipeline.reason(reqs, media)
            retrieval = None
            if pipeline.needs_footage:
                retrieval = pipeline.retrieve(reqs, pipeline.embed(reqs, media))
            plans = pipeline.plan(reqs, media, conclusions, retrieval)
            prompt = encoder.embed(media[0].prompt, media[0].prompt_rate)
            words.append(len(request.script.split()))
            for name, limit in settings.items():
                frames = slot_frames(limit, gen.audio) if limit else None
                tick = time.perf_counter()
                mel = sample_plans(gen.model, plans, frames, gen.speech.pieces.batch)[0]
                scores[name]["sampling_s"].append(time.perf_counter() - tick)
                wave = gen.vocode(mel)
                hyp = asr.transcribe(resample(wave, pipeline.sample_rate, 16_000))
                errors = wer_of([request.script], [hyp]) * words[-1]
                scores[name]["errors"].append(errors)
                sim = speaker_similarity(encoder.embed(wave, pipeline.sample_rate), prompt)
                scores[name]["spk_sim"].append(sim)
            print(
                f"clip {index + 1}/{len(requests)}: "
                + ", ".join(
                    f"{n} WER {scores[n]['errors'][-1] / words[-1]:.3f} "
                    f"sampling {scores[n]['sampling_s'][-1]:.1f} s"
                    for n in settings
                ),
                flush=True,
            )
    total_words = float(sum(words))
    rows = {}
    base = scores["one pass"]
    for name, s in scores.items():
        diff_err = np.array(s["errors"]) - np.array(base["errors"])
        diff_sim = np.array(s["spk_sim"]) - np.array(base["spk_sim"])
        n = len(diff_err)
        rows[name] = {
            "wer": round(sum(s["errors"]) / total_words, 4),
            "wer_diff": round(float(diff_err.sum() / total_words), 4),
            "wer_diff_se": round(float(diff_err.std(ddof=1) * math.sqrt(n) / total_words), 4),
            "spk_sim": round(float(np.mean(s["spk_sim"])), 3),
            "spk_sim_diff": round(float(diff_sim.mean()), 3),
            "spk_sim_diff_se": round(float(diff_sim.std(ddof=1) / math.sqrt(n)), 3),
            "sampling_s_median": round(statistics.median(s["sampling_s"]), 3),
        }
    header = f"{'WER':>8}{'vs one pass':>18}{'SPK-SIM':>9}{'vs one pass':>18}{'sampling s':>12}"
    print(f"\n{'setting':<10}{header}")
    for name, r in rows.items():
        print(
            f"{name:<10}{r['wer']:>8.3f}{r['wer_diff']:>+11.3f}±{r['wer_diff_se']:<6.3f}"
            f"{r['spk_sim']:>9.2f}{r['spk_sim_diff']:>+11.2f}±{r['spk_sim_diff_se']:<6.2f}"
            f"{r['sampling_s_median']:>12.2f}"
        )
    write_json(
        args.out,
        {
            "benchmark": "pieces_quality",
            "model": args.model,
            "clip_seconds": args.seconds,
            "clips": args.clips,
            "max_seconds": args.max_seconds,
            "nfe": args.nfe,
            "machine": cpu_description() | {"torch_threads": args.threads},
            "settings": rows,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
