"""Our DiT sampler against the f5-tts reference: same weights, same noise, one run.

For each model size and NFE, samples once with the reference ``CFM.sample``
(torchdiffeq, its text cache), once with ours (prepared inputs, batched
guidance) and once with ours compiled with its weights frozen (``sampler.compile``),
after a warm-up of each (the compiled warm-up is the compile, reported apart),
and reports the max output difference and the speed ratio. ``tiny`` is the tiny
preset's size; ``base`` is F5TTS_v1_Base (on CPU with few steps and a short
clip: ``--base-nfe``).

    python benchmarks/dit_sampling.py [--repeats 3] [--skip-base] [--no-compile]

Writes ``benchmarks/results/dit_sampling.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def _time(fn, repeats: int) -> tuple[float, torch.Tensor, float]:
    """Best of ``repeats`` after a warm-up -> (best s, output, warm-up s)."""
    start = time.perf_counter()
    fn()  # warm-up (for a compiled sampler: the compile)
    warm_up = time.perf_counter() - start
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out, warm_up


def bench(
    name: str,
    config: DiTConfig,
    nfe: int,
    frames: int,
    repeats: int,
    ref_module,
    compiled: bool = True,
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

    t_ref, a, _ = _time(run_ref, repeats)
    t_ours, b, _ = _time(run_ours, repeats)
    row = {
        "model": name,
        "nfe": nfe,
        "frames": frames,
        "params_m": round(sum(p.numel() for p in ours.parameters()) / 1e6, 2),
        "reference_s": round(t_ref, 4),
        "ours_s": round(t_ours, 4),
        "speedup": round(t_ref / t_ours, 3),
        "max_abs_diff": float((a - b).abs().max()),
    }
    if compiled:
        fast = sampler.model_copy(update={"compile": True})
        t_comp, c, compile_s = _time(lambda: run_ours(fast), repeats)
        row |= {
            "compiled_s": round(t_comp, 4),
            "compiled_speedup": round(t_ref / t_comp, 3),
            "compiled_max_abs_diff": float((a - c).abs().max()),
            "compile_s": round(compile_s, 1),
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=300, help="total mel frames (~3.2 s)")
    parser.add_argument("--base-frames", type=int, default=150)
    parser.add_argument(
        "--base-nfe", type=int, nargs="+", default=[4], help="few steps: base on CPU is slow"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-base", action="store_true")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    ref_module = load_reference()
    if ref_module is None:
        raise SystemExit("f5-tts is not installed: make install (requirements/nodeps-dev.txt)")
    torch.set_num_threads(args.threads)
    tiny = load_config("tiny").speech.dit
    compiled = not args.no_compile
    rows = [
        bench("tiny", tiny, nfe, args.frames, args.repeats, ref_module, compiled)
        for nfe in (16, 32)
    ]
    if not args.skip_base:
        base = DiTConfig()
        rows += [
            bench("base", base, nfe, args.base_frames, 1, ref_module, compiled)
            for nfe in args.base_nfe
        ]
    columns = ("model", "params M", "NFE", "ref s", "ours s", "speed-up", "max diff")
    if compiled:
        columns += ("compiled s", "speed-up", "max diff", "compile s")
    print(" ".join(f"{c:>10}" for c in columns))
    for r in rows:
        line = (
            f"{r['model']:>10} {r['params_m']:>10} {r['nfe']:>10} {r['reference_s']:>10} "
            f"{r['ours_s']:>10} {r['speedup']:>10} {r['max_abs_diff']:>10.2e}"
        )
        if compiled:
            line += (
                f" {r['compiled_s']:>10} {r['compiled_speedup']:>10}"
                f" {r['compiled_max_abs_diff']:>10.2e} {r['compile_s']:>10}"
            )
        print(line)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "dit_sampling",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
        },
        "torch": torch.__version__,
        "threads": args.threads,
        "rows": rows,
    }
    (args.out / "dit_sampling.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
