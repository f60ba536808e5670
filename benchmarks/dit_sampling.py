"""Our DiT sampler against the f5-tts reference: same weights, same noise, one run.

For each model size and NFE, the systems are the reference ``CFM.sample``
(torchdiffeq, its text cache), ours (prepared inputs, batched guidance), ours
compiled with its weights frozen (``sampler.compile``) and, with ``--fewer-nfe``,
ours at fewer steps (the served setting, whose quality against the reference
step count is measured by ``benchmarks/sampler_quality.py``). Each is warmed up
once (the compiled warm-up is the compile, reported apart), then they run
interleaved, ref, ours, compiled, fewer, ref, ours ... ``--repeats`` rounds, so a
busy machine slows each alike; every figure is the median with its min-max, and
each speed-up is the median of the per-round ratios. The result names the CPU
model, cores, instruction sets, torch threads, malloc settings and load average:
the compiled gain is 1.67-1.80x on one machine of this kind and 1.0x on another.
``tiny`` is the tiny preset's size; ``base`` is F5TTS_v1_Base (on CPU with few
steps and a short clip: ``--base-nfe``).

    python benchmarks/dit_sampling.py [--repeats 5] [--skip-base] [--no-compile]

Writes ``benchmarks/results/dit_sampling.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dubops.config import load_config
from dubops.speech.cfm import FlowMatching
from dubops.speech.dit import DiT
from dubops.speech.settings import DiTConfig, SamplerConfig
from tests.parity.f5_reference import load_reference

MALLOC_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


class _MelPassthrough(torch.nn.Identity):
    n_mel_channels = 100


def _models(config: DiTConfig, ref_module):
    torch.manual_seed(0)
    ref = ref_module.DiT(
        dim=config.dim,
        depth=config.depth,
        heads=config.heads,
        dim_head=config.dim_head,
        ff_mult=config.ff_mult,
        mel_dim=config.mel_dim,
        text_num_embeds=config.text_num_embeds,
        text_dim=config.text_dim,
        conv_layers=config.conv_layers,
    )
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.02)
    ours = DiT(config)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref_cfm = ref_module.CFM(ref.eval(), mel_spec_module=_MelPassthrough(), num_channels=100)
    return ref_cfm, FlowMatching(ours.eval())


def _interleaved(systems: dict, repeats: int) -> tuple[dict, dict, dict]:
    """Warm each system up, then run them in turn ``repeats`` times.

    Returns ``(seconds per system per round, last output, warm-up seconds)``.
    """
    warm, out = {}, {}
    for name, fn in systems.items():
        start = time.perf_counter()
        out[name] = fn()  # warm-up (for a compiled sampler: the compile)
        warm[name] = time.perf_counter() - start
    seconds: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(repeats):
        for name, fn in systems.items():
            start = time.perf_counter()
            out[name] = fn()
            seconds[name].append(time.perf_counter() - start)
    return seconds, out, warm


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def _ratio(reference: list[float], system: list[float]) -> float:
    """Median over rounds of reference / system (each round's pair ran back to back)."""
    return round(statistics.median(r / s for r, s in zip(reference, system, strict=True)), 3)


def bench(
    name: str,
    config: DiTConfig,
    nfe: int,
    frames: int,
    repeats: int,
    ref_module,
    compiled: bool = True,
    fewer_nfe: int | None = None,
) -> dict:
    ref, ours = _models(config, ref_module)
    prompt = frames // 3
    g = torch.Generator().manual_seed(1)
    cond = torch.randn(1, prompt, 100, generator=g)
    text = torch.randint(0, min(config.text_num_embeds, 90), (1, frames), generator=g)
    sampler = SamplerConfig(nfe=nfe, sway_coef=-1.0, cfg_strength=2.0)

    def run_ref():
        with torch.inference_mode():
            return ref.sample(
                cond, text, frames, steps=nfe, cfg_strength=2.0, sway_sampling_coef=-1.0, seed=3
            )[0]

    def run_ours(fast: SamplerConfig = sampler):
        with torch.inference_mode():
            return ours.sample(cond, text, frames, seed=3, sampler=fast)

    systems = {"reference": run_ref, "ours": run_ours}
    if compiled:
        systems["compiled"] = lambda: run_ours(sampler.model_copy(update={"compile": True}))
    if fewer_nfe:
        systems["fewer"] = lambda: run_ours(sampler.model_copy(update={"nfe": fewer_nfe}))
    seconds, out, warm = _interleaved(systems, repeats)
    ref_s = seconds["reference"]
    row = {
        "model": name,
        "nfe": nfe,
        "frames": frames,
        "params_m": round(sum(p.numel() for p in ours.parameters()) / 1e6, 2),
        "rounds": repeats,
        "reference_s": _spread(ref_s),
        "ours_s": _spread(seconds["ours"]),
        "speedup": _ratio(ref_s, seconds["ours"]),
        "max_abs_diff": float((out["reference"] - out["ours"]).abs().max()),
    }
    if compiled:
        row |= {
            "compiled_s": _spread(seconds["compiled"]),
            "compiled_speedup": _ratio(ref_s, seconds["compiled"]),
            "compiled_max_abs_diff": float((out["reference"] - out["compiled"]).abs().max()),
            "compile_s": round(warm["compiled"], 1),
        }
    if fewer_nfe:
        row |= {
            "fewer_nfe": fewer_nfe,
            "fewer_s": _spread(seconds["fewer"]),
            "fewer_speedup": _ratio(ref_s, seconds["fewer"]),
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--frames", type=int, default=300, help="total mel frames (~3.2 s)")
    parser.add_argument("--base-frames", type=int, default=150)
    parser.add_argument(
        "--base-nfe", type=int, nargs="+", default=[4], help="few steps: base on CPU is slow"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-base", action="store_true")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    parser.add_argument(
        "--fewer-nfe",
        type=int,
        default=5,
        help="ours at this many steps beside the reference at 16 (0: off); quality at "
        "these steps: benchmarks/sampler_quality.py",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    ref_module = load_reference()
    if ref_module is None:
        raise SystemExit("f5-tts is not installed: make install (requirements/nodeps-dev.txt)")
    torch.set_num_threads(args.threads)
    tiny = load_config("tiny").speech.dit
    compiled = not args.no_compile
    rows = [
        bench(
            "tiny",
            tiny,
            nfe,
            args.frames,
            args.repeats,
            ref_module,
            compiled,
            args.fewer_nfe if nfe == 16 else None,
        )
        for nfe in (16, 32)
    ]
    if not args.skip_base:
        base = DiTConfig()
        rows += [
            bench("base", base, nfe, args.base_frames, min(args.repeats, 3), ref_module, compiled)
            for nfe in args.base_nfe
        ]
    print(f"{'model':>6} {'NFE':>4} {'system':>10} {'median s':>9} {'min-max s':>14} {'vs ref':>7}")
    for r in rows:
        table = [("reference", r["reference_s"], 1.0), ("ours", r["ours_s"], r["speedup"])]
        if compiled:
            table.append(("compiled", r["compiled_s"], r["compiled_speedup"]))
        if r.get("fewer_nfe"):
            table.append((f"ours@{r['fewer_nfe']}", r["fewer_s"], r["fewer_speedup"]))
        for system, spread, ratio in table:
            span = f"{spread['min']}-{spread['max']}"
            print(
                f"{r['model']:>6} {r['nfe']:>4} {system:>10} {spread['median']:>9} "
                f"{span:>14} {ratio:>6}x"
            )
    from dubops.fileio import write_json
    from dubops.run_environment import cpu_description

    result = {
        "benchmark": "dit_sampling",
        "machine": cpu_description()
        | {
            "platform": platform.platform(),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "malloc": {v: os.environ.get(v, "-") for v in MALLOC_VARS},
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "torch": torch.__version__,
        "threads": args.threads,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "dit_sampling.json", result)


if __name__ == "__main__":
    main()
