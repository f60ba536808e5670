"""Our DiT sampler against the f5-tts reference: same weights, same noise, one run.

For each model size and NFE, samples once with the reference ``CFM.sample``
(torchdiffeq, its text cache) and once with ours (prepared inputs, batched
guidance), after a warm-up of each, and reports the max output difference and
the speed ratio. ``tiny`` is the tiny preset's size; ``base`` is F5TTS_v1_Base
(on CPU with few steps and a short clip: ``--base-nfe``).

    python benchmarks/dit_sampling.py [--repeats 3] [--skip-base]

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


def _time(fn, repeats: int) -> tuple[float, torch.Tensor]:
    fn()  # warm-up
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def bench(name: str, config: DiTConfig, nfe: int, frames: int, repeats: int, ref_module) -> dict:
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

    def run_ours():
        with torch.inference_mode():
            return ours.sample(cond, text, frames, seed=3, sampler=sampler)

    t_ref, a = _time(run_ref, repeats)
    t_ours, b = _time(run_ours, repeats)
    return {
        "model": name,
        "nfe": nfe,
        "frames": frames,
        "params_m": round(sum(p.numel() for p in ours.parameters()) / 1e6, 2),
        "reference_s": round(t_ref, 4),
        "ours_s": round(t_ours, 4),
        "speedup": round(t_ref / t_ours, 3),
        "max_abs_diff": float((a - b).abs().max()),
    }


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
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    ref_module = load_reference()
    if ref_module is None:
        raise SystemExit("f5-tts is not installed: make install (requirements/nodeps-dev.txt)")
    torch.set_num_threads(args.threads)
    tiny = load_config("tiny").speech.dit
    rows = [bench("tiny", tiny, nfe, args.frames, args.repeats, ref_module) for nfe in (16, 32)]
    if not args.skip_base:
        base = DiTConfig()
        rows += [bench("base", base, nfe, args.base_frames, 1, ref_module) for nfe in args.base_nfe]
    columns = ("model", "params M", "NFE", "ref s", "ours s", "speed-up", "max diff")
    print(" ".join(f"{c:>9}" for c in columns))
    for r in rows:
        print(
            f"{r['model']:>6} {r['params_m']:>9} {r['nfe']:>4} {r['reference_s']:>8} "
            f"{r['ours_s']:>8} {r['speedup']:>9} {r['max_abs_diff']:>10.2e}"
        )
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
