"""Stage 1.1: chain-of-thought SFT of the reasoner with TRL's ``SFTTrainer``.

Tiny preset: tokenizer trained on the training split's text, a random LLaVA,
the vision warm-up (:mod:`dubops.reasoning.warmup`), then SFT with the tower
frozen (LLaVA's stage 2) and the loss on the answer only. Pretrained preset:
a local checkpoint with LoRA adapters, no warm-up. The starting model is saved
in ``<out>/init`` so ``--resume`` restarts from it and TRL's checkpoint instead
of warming up again.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dubops.config.models import DubOpsConfig
from dubops.fileio import write_json
from dubops.reasoning.settings import ReasonerConfig, ReasonerTrainConfig
from dubops.reasoning.training_data import ClipSet, load_clips, sft_rows, text_corpus
from dubops.safety_limit import SafetyLimit

logger = logging.getLogger(__name__)


@dataclass
class ReasonerStageResult:
    """What a reasoner stage did and how the final model scores on validation."""

    stage: str
    out_dir: str
    steps: int
    train_loss: float | None
    minutes: float
    validation: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def initial_model(
    rc: ReasonerConfig, train: ClipSet, val: ClipSet, tracker: Any, limit: SafetyLimit | None
) -> tuple[Any, Any]:
    """(model, processor) before SFT: built and warmed up (tiny) or loaded (pretrained)."""
    from dubops.reasoning.model import build_processor, build_tiny, load_pretrained, vision_tower
    from dubops.reasoning.tokenizer import train_tokenizer
    from dubops.reasoning.warmup import clip_targets, warm_up_vision

    if rc.model == "pretrained":
        return load_pretrained(rc)
    import torch

    tokenizer = train_tokenizer(text_corpus(train), rc.language.vocab_size)
    torch.manual_seed(rc.sft.seed)  # the random initial weights are part of the run
    model, processor = build_tiny(rc, tokenizer), build_processor(rc, tokenizer)
    if rc.warmup.epochs:
        per_clip = len(train.images[0])

        def pixels(clips: ClipSet) -> Any:
            flat = [im for images in clips.images for im in images]
            return processor.image_processor(flat, return_tensors="pt").pixel_values

        def log(epoch: int, metrics: dict[str, float]) -> None:
            if tracker is not None:
                tracker.log_metrics(metrics, step=epoch)

        w = rc.warmup
        metrics = warm_up_vision(
            vision_tower(model),
            pixels(train),
            clip_targets(list(train.rows.itertuples())),
            per_clip,
            w.epochs,
            w.lr,
            w.batch_size,
            val=(pixels(val), clip_targets(list(val.rows.itertuples()))) if len(val) else None,
            on_epoch=log,
            limit=limit,
        )
        logger.info("vision warm-up: %s", metrics)
    return model, processor


def trainer_args(t: ReasonerTrainConfig, rc: ReasonerConfig, out: Path, rows: int) -> dict:
    """Keyword arguments shared by the SFT and DPO configs."""
    import torch

    cuda = torch.cuda.is_available()
    per_epoch = math.ceil(rows / (t.batch_size * t.grad_accumulation_steps))
    memory = {"gradient_checkpointing": True} if rc.gradient_checkpointing else {}
    return memory | {
        "output_dir": str(out / "checkpoints"),
        "num_train_epochs": t.epochs,
        "per_device_train_batch_size": t.batch_size,
        "gradient_accumulation_steps": t.grad_accumulation_steps,
        "learning_rate": t.lr,
        "lr_scheduler_type": "cosine",
        "warmup_steps": int(t.warmup_ratio * per_epoch * t.epochs),
        "weight_decay": t.weight_decay,
        "logging_steps": max(1, min(10, per_epoch)),
        "save_strategy": "epoch",
        "save_total_limit": 2,
        "report_to": "none",
        "use_cpu": not cuda,
        "bf16": rc.bf16 and cuda,
        "dataloader_num_workers": 0,
        "seed": t.seed,
        "max_length": None,
        "remove_unused_columns": False,
    }


def last_checkpoint(out: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = out / "checkpoints"
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def train_sft(
    config: DubOpsConfig,
    data_dir: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    max_minutes: float | None = None,
    tracker: Any = None,
) -> ReasonerStageResult:
    """Run (or resume) CoT SFT; the trained reasoner is saved in ``out_dir``."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from dubops.reasoning.callbacks import TimeLimit, TrackMetrics, ValidateEachEpoch
    from dubops.reasoning.inference import Reasoner
    from dubops.reasoning.model import load_reasoner, save_reasoner, vision_tower

    began = time.monotonic()
    rc, t = config.reasoning, config.reasoning.sft
    limit = SafetyLimit("reasoner_sft", max_minutes or t.max_minutes, began)
    if t.torch_threads:
        torch.set_num_threads(t.torch_threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = load_clips(data_dir, ["train"], rc, limit=t.train_clips)
    val = load_clips(data_dir, ["val"], rc, limit=t.eval_clips)
    init = out / "init"
    if resume and rc.model == "tiny" and (init / "reasoner.json").is_file():
        model, processor, _ = load_reasoner(init)
        model.train()
    else:
        # A pretrained start is its checkpoint plus fresh adapters: nothing to save
        # (TRL's checkpoint holds the adapters on resume).
        model, processor = initial_model(rc, train, val, tracker, limit)
        if rc.model == "tiny":
            save_reasoner(model, processor, rc, init)
    if rc.model == "tiny" and rc.warmup.freeze_after:
        vision_tower(model).requires_grad_(False)
    prompt_of = Reasoner(model, processor, rc).prompt
    dataset = Dataset.from_list(sft_rows(train, prompt_of, processor.tokenizer.eos_token))
    stopper = TimeLimit(limit)
    validator = ValidateEachEpoch(processor, rc, val, tracker, "sft")
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**trainer_args(t, rc, out, len(dataset)), completion_only_loss=True),
        train_dataset=dataset,
        processing_class=processor,
        callbacks=[stopper, TrackMetrics(tracker, "sft"), validator],
    )
    output = trainer.train(resume_from_checkpoint=last_checkpoint(out) if resume else None)
    stopper.enforce()
    return finish_stage("reasoner_sft", trainer, output, (rc, processor, val), began, tracker)


def finish_stage(
    stage: str,
    trainer: Any,
    output: Any,
    validation: tuple[ReasonerConfig, Any, ClipSet],  # config, processor, clips
    began: float,
    tracker: Any,
    extra: dict[str, Any] | None = None,
) -> ReasonerStageResult:
    """Validate the trained model, save it into the run folder, write ``stage.json``."""
    from dubops.reasoning.callbacks import validate
    from dubops.reasoning.model import save_reasoner

    out = Path(trainer.args.output_dir).parent
    rc, processor, val = validation
    scores = validate(trainer.model, processor, rc, val) if len(val) else {}
    samples = scores.pop("samples", "")
    save_reasoner(trainer.model, processor, rc, out)
    result = ReasonerStageResult(
        stage=stage,
        out_dir=str(out),
        steps=int(trainer.state.global_step),
        train_loss=float(output.training_loss) if output.training_loss else None,
        minutes=round((time.monotonic() - began) / 60, 2),
        validation=scores,
        extra=extra or {},
    )
    write_json(out / "stage.json", asdict(result))
    if tracker is not None:
        tracker.log_artifact(out / "stage.json")
        tracker.log_text(samples, f"samples/{stage}_final.txt")
    return result
