"""Griffin-Lim settings on long speech: fidelity, time and memory, interleaved.

Why this exists: the vocoder moved from 32 plain Griffin-Lim iterations to 16 fast
ones (momentum 0.99), and a long mel is now made in chunks
(``audio.griffin_lim_chunk_frames``). On held-out clips' ground-truth speech strung
together (``--seconds``), each system inverts the same log-mel; fidelity is the
mean absolute log-mel difference between that mel and the mel of the result
(copy synthesis), time the median of ``--rounds`` interleaved runs. (Peak memory
is the end-to-end figure of ``dub_profile.py``: with this allocator's settings a
process's RSS growth for one inversion was not repeatable.)

    python benchmarks/vocoder.py --data data/tiny

Writes ``benchmarks/results/vocoder.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SYSTEMS = {
    "plain 32 iterations, one piece": {"iters": 32, "momentum": 0.0, "chunked": False},
    "fast 16 iterations, one piece": {"iters": 16, "momentum": 0.99, "chunked": False},
    "fast 16 iterations, chunks (served)": {"iters": 16, "momentum": 0.99, "chunked": True},
}


def _speech(data: Path, seconds: float) -> np.ndarray:
    import pandas as pd

    from dubops.audio import read_wav
    from dubops.data.layout import CorpusLayout

    layout = CorpusLayout(data)
    rows = pd.read_parquet(layout.manifest)
    rows = rows[rows["split"].isin(["test_s1", "test_s2"])]
    parts, total = [], 0.0
    for path in rows["audio_path"]:
        wave, rate = read_wav(layout.resolve(path), 24_000)
        parts.append(wave)
        total += len(wave) / rate
        if total >= seconds:
            break
    return np.concatenate(parts)


def _run(name: str, mel: np.ndarray) -> tuple[np.ndarray, float]:
    from dubops.audio import griffin_lim
    from dubops.config import AudioConfig
    from dubops.speech.griffin_lim_chunks import griffin_lim_in_chunks

    spec = SYSTEMS[name]
    audio = AudioConfig(griffin_lim_iters=spec["iters"], griffin_lim_momentum=spec["momentum"])
    tick = time.perf_counter()
    if spec["chunked"]:
        wave = griffin_lim_in_chunks(mel, audio, audio.griffin_lim_chunk_frames)
    else:
        wave = griffin_lim(mel, audio)
    return wave, time.perf_counter() - tick


def main() -> None:
    import torch

    from dubops.audio import MelFrontEnd
    from dubops.config import AudioConfig
    from dubops.fileio import write_json
    from dubops.run_environment import cpu_description

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "tiny")
    parser.add_argument("--seconds", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/vocoder.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    front_end = MelFrontEnd(AudioConfig())
    speech = _speech(args.data, args.seconds)
    mel = front_end(speech).numpy()
    seconds: dict[str, list[float]] = {name: [] for name in SYSTEMS}
    error: dict[str, float] = {}
    for _ in range(args.rounds):
        for name in SYSTEMS:
            wave, spent = _run(name, mel)
            seconds[name].append(spent)
            again = front_end(wave).numpy()
            n = min(mel.shape[1], again.shape[1])
            error[name] = float(np.abs(mel[:, :n] - again[:, :n]).mean())
    rows = {}
    reference = statistics.median(seconds[next(iter(SYSTEMS))])
    for name in SYSTEMS:
        median = statistics.median(seconds[name])
        rows[name] = {
            "log_mel_l1": round(error[name], 4),
            "seconds_median": round(median, 3),
            "seconds_range": [round(min(seconds[name]), 3), round(max(seconds[name]), 3)],
            "time_vs_plain": round(median / reference, 2),
        }
    print(f"{len(speech) / 24_000:.1f} s of speech, {args.rounds} interleaved rounds")
    print(f"{'system':<38}{'log-mel L1':>11}{'median s':>10}{'x plain':>8}")
    for name, row in rows.items():
        print(
            f"{name:<38}{row['log_mel_l1']:>11.4f}{row['seconds_median']:>10.3f}"
            f"{row['time_vs_plain']:>8.2f}"
        )
    write_json(
        args.out,
        {
            "benchmark": "vocoder",
            "speech_seconds": round(len(speech) / 24_000, 2),
            "machine": cpu_description() | {"torch_threads": args.threads},
            "systems": rows,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
