"""The speech trainer's knobs: pydantic only, so loading a config never imports torch.

One model, :class:`TrainConfig`, a config section like the others (unknown keys
rejected, assignments validated) so it can become a section of ``DubOpsConfig`` as is.
Defaults follow F5-TTS's base recipe where it has one (AdamW at 7.5e-5, 38,400
frames a batch per GPU, max grad norm 1, EMA 0.9999).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dubops.config.section import CheckedSection


class TrainConfig(CheckedSection):
    """Optimisation, batching, cadence and stopping of one training run."""

    # Optimiser: AdamW with F5-TTS's learning rate and torch's default betas / decay.
    lr: float = Field(7.5e-5, gt=0, description="peak learning rate")
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.01, ge=0)
    warmup_steps: int = Field(2000, ge=0, description="linear warm-up, in optimizer updates")
    total_steps: int = Field(
        200_000, gt=0, description="updates in the run; the lr decays linearly to 0 at the end"
    )
    max_grad_norm: float = Field(1.0, gt=0, description="clip the global gradient norm")
    grad_accumulation_steps: int = Field(1, ge=1, description="batches per optimizer update")

    # EMA of the weights: the ones evaluated, sampled and shipped.
    ema_decay: float = Field(0.9999, gt=0, lt=1)
    ema_warmup: bool = Field(
        True, description="decay min(ema_decay, (1+t)/(10+t)) so early averages track the model"
    )

    # Batching by frame budget (F5-TTS's DynamicBatchSampler).
    frames_per_batch: int = Field(
        38_400, gt=0, description="padded mel frames per batch per process"
    )
    max_samples_per_batch: int = Field(64, gt=0)
    num_workers: int = Field(
        0, ge=0, description="DataLoader workers; 0 keeps in-memory mel caches in one process"
    )

    # Cadence, in optimizer updates; 0 turns a step off.
    log_every: int = Field(50, ge=0)
    eval_every: int = Field(500, ge=0)
    save_every: int = Field(1000, ge=0)
    sample_every: int = Field(1000, ge=0)
    keep_last: int = Field(3, ge=1, description="checkpoints kept on disk, newest first")

    bf16: bool = Field(True, description="bf16 autocast on CUDA; ignored on CPU")
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for torch; 1 keeps small models fast on a busy shared CPU",
    )
    seed: int = 0
    context: Literal["self", "prompt", "mixed"] = Field(
        "self",
        description="audio context of the flow objective (dubops.speech.context): self, "
        "F5's infilling of the clip itself; prompt, the clip's timbre prompt then the whole "
        "clip, as inference sees it (speech stages 2.2 and the graph); mixed, either per sample",
    )
    max_minutes: float | None = Field(
        None,
        gt=0,
        description="safety limit: a run still short of total_steps after this wall time "
        "saves a checkpoint and fails (budgets are updates; a busy machine is only slower)",
    )
    find_unused_parameters: bool = Field(
        True, description="DDP: guidance dropout leaves branches unused in some steps"
    )

    @model_validator(mode="after")
    def _check_schedule(self) -> TrainConfig:
        if self.warmup_steps >= self.total_steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must be below total_steps "
                f"({self.total_steps}); lower warmup_steps or raise total_steps"
            )
        return self
