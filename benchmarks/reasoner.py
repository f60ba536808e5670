"""Reasoner speed: generated tokens/s and clips/s at batch 1 and 8, and SFT samples/s.

One invocation measures, on the same model and clips:

* generation with the KV cache (what ``Reasoner.reason`` does) at batch 1 and
  batch 8, against the reference of generating without the cache at batch 1;
  every answer is forced to ``--new-tokens`` tokens so the runs do the same
  work (random weights would otherwise stop anywhere);
* clips per second answering normally (greedy, stopping at the end token);
* one clip at a time, token by token against drafted (``dubops.reasoning.drafting``:
  guesses from earlier answers checked several per pass), interleaved clip by clip,
  drafted first so no clip's own answer is in the draft when it is answered; the
  first ``--draft-warmup`` clips only teach the draft, as a server's warm-up dub does;
* SFT training samples per second (TRL ``SFTTrainer``, ``--sft-steps`` steps).

With ``--model`` it uses a trained reasoner; otherwise the preset's model with
random weights (same size and cost). Prints a table and writes
``benchmarks/results/reasoner.json``.

    python benchmarks/reasoner.py --data data/tiny [--model outputs/reasoner_mpo] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path


def _reasoner(model_dir: Path | None, data: Path, preset: str):
    from dubops.config import load_config
    from dubops.reasoning.inference import Reasoner
    from dubops.reasoning.model import build_processor, build_tiny
    from dubops.reasoning.tokenizer import train_tokenizer
    from dubops.reasoning.training_data import load_clips, text_corpus

    if model_dir is not None:
        return Reasoner.from_dir(model_dir)
    rc = load_config(preset).reasoning
    train = load_clips(data, ["train"], rc, limit=64)
    tokenizer = train_tokenizer(text_corpus(train), rc.language.vocab_size)
    return Reasoner(build_tiny(rc, tokenizer).eval(), build_processor(rc, tokenizer), rc)


def _generate(reasoner, clips, batch: int, new_tokens: int, cache: bool) -> dict:
    import torch

    enc = reasoner.processor(
        images=[im for images in clips.images[:batch] for im in images],
        text=[reasoner.prompt(s) for s in clips.rows.script[:batch]],
        padding=True,
        padding_side="left",
        return_tensors="pt",
        add_special_tokens=False,
    )
    tok = reasoner.processor.tokenizer
    kwargs = dict(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        use_cache=cache,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    with torch.no_grad():
        reasoner.model.generate(**enc, **(kwargs | {"max_new_tokens": 2, "min_new_tokens": 2}))
        start = time.perf_counter()
        out = reasoner.model.generate(**enc, **kwargs)
        seconds = time.perf_counter() - start
    tokens = (out.shape[1] - enc["input_ids"].shape[1]) * batch
    return {
        "what": f"generate batch {batch}{'' if cache else ' (no KV cache)'}",
        "batch": batch,
        "kv_cache": cache,
        "seconds": round(seconds, 3),
        "tokens_per_second": round(tokens / seconds, 1),
        "clips_per_second": round(batch / seconds, 3),
    }


def _answer(reasoner, clips, batch: int) -> dict:
    n = len(clips)
    start = time.perf_counter()
    results = reasoner.reason(
        list(clips.rows.video_path), list(clips.rows.script), batch_size=batch, images=clips.images
    )
    seconds = time.perf_counter() - start
    tokens = sum(r.new_tokens for r in results)
    return {
        "what": f"reason {n} clips, batch {batch}",
        "batch": batch,
        "kv_cache": True,
        "seconds": round(seconds, 3),
        "tokens_per_second": round(tokens / seconds, 1),
        "clips_per_second": round(n / seconds, 3),
    }


def _drafted(reasoner, clips, warmup: int) -> list[dict]:
    """Token-by-token and drafted greedy answers, one clip at a time, interleaved."""
    from dubops.reasoning.drafting import AnswerDraft

    reasoner.draft = AnswerDraft()
    paths, scripts = list(clips.rows.video_path), list(clips.rows.script)
    for i in range(warmup):
        reasoner.reason([paths[i]], [scripts[i]], images=[clips.images[i]])
    runs = {8: [], 0: []}
    same = 0
    for i in range(warmup, len(paths)):
        texts = {}
        for lookahead in (8, 0):
            reasoner.lookahead = lookahead
            passes = reasoner.passes
            start = time.perf_counter()
            result = reasoner.reason([paths[i]], [scripts[i]], images=[clips.images[i]])[0]
            seconds = time.perf_counter() - start
            runs[lookahead].append((seconds, result.new_tokens, reasoner.passes - passes))
            texts[lookahead] = result.text
        same += texts[8] == texts[0]
    reasoner.lookahead = 8
    rows = []
    for lookahead, what in ((0, "token by token"), (8, "drafted")):
        seconds = sum(r[0] for r in runs[lookahead])
        tokens = sum(r[1] for r in runs[lookahead])
        n = len(runs[lookahead])
        rows.append(
            {
                "what": f"reason 1 at a time, {what}",
                "batch": 1,
                "kv_cache": True,
                "lookahead": lookahead,
                "seconds": round(seconds, 3),
                "tokens_per_second": round(tokens / seconds, 1),
                "clips_per_second": round(n / seconds, 3),
                "passes_per_clip": round(sum(r[2] for r in runs[lookahead]) / n, 1),
                "same_answers": f"{same}/{n}",
            }
        )
    return rows


def _sft(reasoner, clips, steps: int, batch: int) -> dict:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from dubops.reasoning.training_data import sft_rows

    rows = sft_rows(clips, reasoner.prompt, reasoner.processor.tokenizer.eos_token)
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(
            output_dir=tmp,
            max_steps=steps + 2,
            per_device_train_batch_size=batch,
            learning_rate=1e-4,
            report_to="none",
            use_cpu=True,
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            completion_only_loss=True,
            max_length=None,
            remove_unused_columns=False,
            dataloader_num_workers=0,
        )
        trainer = SFTTrainer(
            model=reasoner.model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=reasoner.processor,
        )
        stamps: list[float] = []
        from transformers import TrainerCallback

        class Stamp(TrainerCallback):
            def on_step_end(self, *_a, **_k):
                stamps.append(time.perf_counter())

        trainer.add_callback(Stamp())
        trainer.train()
    seconds = stamps[-1] - stamps[1]  # the first two steps are warm-up
    return {
        "what": f"SFT, batch {batch}",
        "batch": batch,
        "seconds": round(seconds, 3),
        "samples_per_second": round(steps * batch / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/tiny"))
    parser.add_argument("--model", type=Path, default=None, help="trained reasoner folder")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--clips", type=int, default=16, help="test clips answered")
    parser.add_argument("--sft-steps", type=int, default=10)
    parser.add_argument(
        "--draft-warmup", type=int, default=2, help="clips that only teach the draft"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    import torch

    from dubops.reasoning.training_data import load_clips

    torch.set_num_threads(args.threads)
    reasoner = _reasoner(args.model, args.data, args.preset)
    clips = load_clips(args.data, ["test_s1", "test_s2"], reasoner.config, limit=args.clips)
    rows = [_generate(reasoner, clips, 1, args.new_tokens, cache=False)]
    rows += [_generate(reasoner, clips, b, args.new_tokens, cache=True) for b in (1, 8)]
    if args.model is not None:
        reasoner.lookahead = 0  # token by token here; the drafted rows follow
        rows += [_answer(reasoner, clips, b) for b in (1, 8)]
        rows += _drafted(reasoner, clips, args.draft_warmup)
    reference = rows[0]["tokens_per_second"]
    for row in rows:
        row["speedup_vs_no_cache_batch_1"] = round(row["tokens_per_second"] / reference, 2)
    train = load_clips(args.data, ["train"], reasoner.config, limit=8 * (args.sft_steps + 2))
    sft = _sft(reasoner, train, args.sft_steps, 8)

    print(f"{'measurement':<34} {'tokens/s':>9} {'clips/s':>8} {'x ref':>6}")
    for row in rows:
        print(
            f"{row['what']:<34} {row['tokens_per_second']:>9.1f} {row['clips_per_second']:>8.3f}"
            f" {row['speedup_vs_no_cache_batch_1']:>6.2f}"
            + (f"  {row['passes_per_clip']} passes/clip" if "passes_per_clip" in row else "")
        )
    print(f"{sft['what']:<34} {sft['samples_per_second']:>9.2f} samples/s")
    args.out.mkdir(parents=True, exist_ok=True)
    from dubops.run_environment import cpu_description

    result = {
        "model": str(args.model) if args.model else f"{args.preset} preset, random weights",
        "threads": args.threads,
        "new_tokens": args.new_tokens,
        "machine": cpu_description() | {"platform": platform.platform()},
        "generation": rows,
        "sft": sft,
    }
    path = args.out / "reasoner.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
