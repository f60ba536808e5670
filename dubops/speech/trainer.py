"""The speech generator's training loop, shared by DiT pretraining and ControlNet tuning.

Model-agnostic: anything with ``training_loss(batch) -> (loss, terms)`` trains
(the objective lives in the model, as F5-TTS's ``CFM``; the loop owns
optimisation, EMA, checkpoints and logging). Per update: AdamW with linear
warm-up and linear decay to 0 (F5-TTS), gradient accumulation, global-norm
clipping, an EMA step. On an update-count cadence: log, validate (EMA weights),
sample (EMA weights), checkpoint. Evaluation and sampling run on fixed seeds
and leave the training RNG untouched, so a run resumed from a checkpoint is
bitwise the run that never stopped (given deterministic kernels, as on CPU).
Every loss term a model returns must have the same keys on every call and
rank: the ranks average them with one all-reduce.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in
DistributedDataParallel (gloo on CPU, NCCL on CUDA), each rank reads its share
of the frame-budget batches, and only rank 0 logs, samples and writes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from dubops.errors import StageTimeLimitError
from dubops.speech.batching import DynamicBatchSampler
from dubops.speech.checkpoint import (
    capture_rng_state,
    isolated_rng,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    seed_everything,
    step_dir_name,
)
from dubops.speech.distributed import (
    all_reduce_sum,
    barrier,
    gather_objects,
    join_process_group,
    leave_process_group,
    rank0_decides,
)
from dubops.speech.ema import EMA
from dubops.speech.train_config import TrainConfig

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from dubops.tracking import Tracker

logger = logging.getLogger(__name__)

SampleFn = Callable[[nn.Module, int, Path], list[Path]]
CollateFn = Callable[[list[Any]], dict[str, Any]]


class TrainableModel(Protocol):
    """What the trainer needs of a model (an ``nn.Module``)."""

    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss and named float terms to log (the same keys on every call)."""
        ...


@dataclass
class TrainResult:
    step: int
    train_loss: float | None  # mean over the last logging window
    val_loss: float | None  # the last validation (EMA weights)
    checkpoint: Path | None
    elapsed_s: float  # this run's loop
    # Across ``--resume``: the loops of the earlier parts, up to the checkpoint each
    # resumed from; ``parts`` counts the runs that made the model.
    earlier_s: float = 0.0
    parts: int = 1

    @property
    def total_s(self) -> float:
        return self.earlier_s + self.elapsed_s


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the peak lr for update ``step`` (0-based): up linearly, down to 0.

    Warm-up gives the first update ``1 / (warmup + 1)`` rather than 0 (nanoGPT),
    then decays linearly so update ``total_steps`` would have lr 0 (F5-TTS).
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    return max(0.0, (total_steps - step) / (total_steps - warmup_steps))


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Tensors (in dicts, lists, tuples) onto ``device``; strings and numbers as they are."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


def batch_size(batch: dict[str, Any]) -> int:
    """Items in a collated batch: the leading size of ``mel``, else of the first tensor."""
    tensor = batch.get("mel")
    if tensor is None:
        tensor = next(v for v in batch.values() if isinstance(v, torch.Tensor))
    return int(tensor.shape[0])


def count_frames(batch: dict[str, Any]) -> int:
    """Real (unpadded) mel frames of a batch, for throughput."""
    if "mel_lengths" in batch:
        return int(batch["mel_lengths"].sum())
    if "mel" in batch:
        return int(batch["mel"].shape[0] * batch["mel"].shape[1])
    return 0


class _LossModule(nn.Module):
    """``forward`` = ``training_loss``, so DDP's forward hooks (unused-parameter search) run."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        return self.model.training_loss(batch)


@dataclass
class _Window:
    """Sums since the last log line."""

    loss: float = 0.0
    terms: dict[str, float] = field(default_factory=dict)
    grad_norm: float = 0.0
    batches: int = 0
    updates: int = 0
    frames: int = 0
    seconds: float = 0.0
    lr: float = 0.0  # of the last update


class Trainer:
    """Optimises one model; :meth:`fit` runs (or resumes) a whole run into ``out_dir``.

    Args:
        model: an ``nn.Module`` with ``training_loss`` (:class:`TrainableModel`);
            only its parameters that require grad are trained and averaged.
        train_config: the run's :class:`TrainConfig`.
        out_dir: run folder: ``checkpoints/``, ``samples/step_*/``.
        tracker: a :class:`dubops.tracking.Tracker` (or anything with
            ``log_metrics`` and ``log_artifact``); None logs nowhere.
        sample_fn: ``(model, step, folder) -> files`` called with the EMA weights
            every ``sample_every`` updates on rank 0; the files become artifacts.
        device: default ``cuda:LOCAL_RANK`` when CUDA is there, else CPU.
        stage: the pipeline step this run is, named by the ``max_minutes`` error.
    """

    def __init__(
        self,
        model: nn.Module,
        train_config: TrainConfig,
        out_dir: str | Path,
        tracker: Tracker | None = None,
        sample_fn: SampleFn | None = None,
        device: str | torch.device | None = None,
        stage: str = "training",
    ) -> None:
        if not callable(getattr(model, "training_loss", None)):
            raise ValueError(f"{type(model).__name__} has no training_loss(batch) method")
        self.model = model
        self.config = train_config
        self.out_dir = Path(out_dir)
        self.tracker = tracker
        self.sample_fn = sample_fn
        self.stage = stage
        if device is None:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.rank, self.world_size = 0, 1
        self._term_names: list[str] = []  # the model's loss terms, from its first batch
        # Loop seconds and runs before this one, restored from a checkpoint on --resume.
        self._earlier_s, self._parts = 0.0, 1

    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoints"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def fit(
        self,
        train_dataset: Dataset,
        collate_fn: CollateFn,
        lengths: Sequence[int],
        val_dataset: Dataset | None = None,
        val_lengths: Sequence[int] | None = None,
        resume: bool = False,
        stop_at: int | None = None,
    ) -> TrainResult:
        """Train to ``total_steps`` (or ``stop_at``), checkpointing at the end.

        Raises:
            StageTimeLimitError: ``max_minutes`` ran out first (a checkpoint is kept).


        Args:
            train_dataset: indexable items that ``collate_fn`` turns into a batch dict.
            collate_fn: e.g. ``SpeechDataset.collate``.
            lengths: mel frames of each training item (the manifest's ``mel_frames``).
            val_dataset: optional; its loss (EMA weights) is logged every ``eval_every``.
            val_lengths: its items' frames, to batch it by frame budget (else by count).
            resume: continue from ``out_dir``'s latest checkpoint when there is one.
            stop_at: stop after this update (the schedule still spans ``total_steps``).
        """
        if len(lengths) != len(train_dataset):
            raise ValueError(f"{len(lengths)} lengths for {len(train_dataset)} training items")
        created = self._init_distributed()
        try:
            return self._fit(
                train_dataset, collate_fn, lengths, val_dataset, val_lengths, resume, stop_at
            )
        finally:
            if created:
                leave_process_group()

    def _init_distributed(self) -> bool:
        """Join the torchrun group when WORLD_SIZE > 1; True when this call created it."""
        self.rank, self.world_size, created = join_process_group(self.device)
        return created

    def _fit(
        self,
        train_dataset: Dataset,
        collate_fn: CollateFn,
        lengths: Sequence[int],
        val_dataset: Dataset | None,
        val_lengths: Sequence[int] | None,
        resume: bool,
        stop_at: int | None,
    ) -> TrainResult:
        cfg = self.config
        if cfg.torch_threads is not None and self.device.type == "cpu":
            # Two threads on two busy cores wait on each other at every op (10x slower
            # measured here); one thread per process degrades gracefully.
            torch.set_num_threads(cfg.torch_threads)
        model = self.model.to(self.device)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no parameters that require grad")
        self.optimizer = torch.optim.AdamW(
            params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, cfg.warmup_steps, cfg.total_steps)
        )
        self.ema = EMA(model, cfg.ema_decay, cfg.ema_warmup)
        self.sampler = DynamicBatchSampler(
            lengths,
            cfg.frames_per_batch,
            cfg.max_samples_per_batch,
            seed=cfg.seed,
            rank=self.rank,
            world_size=self.world_size,
        )
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self._earlier_s, self._parts = 0.0, 1
        rng = self._resume() if resume else None
        if self.device.type != "cuda" and cfg.bf16:
            logger.info("bf16 autocast is for CUDA; training in float32 on %s", self.device)
        self._autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if self.device.type == "cuda" and cfg.bf16
            else contextlib.nullcontext()
        )
        self.loss_module: nn.Module = _LossModule(model)
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.loss_module = DistributedDataParallel(
                self.loss_module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters,
            )
        val_batches = self._val_batches(val_dataset, val_lengths)
        end = min(cfg.total_steps, stop_at or cfg.total_steps)
        # Seed (or restore) last: nothing between here and the first batch draws.
        if rng is None:
            seed_everything(cfg.seed + self.rank)
        else:
            restore_rng_state(rng)
        return self._loop(train_dataset, collate_fn, val_dataset, val_batches, end)

    def _resume(self) -> dict[str, Any] | None:
        """Load the latest checkpoint if any; return this rank's RNG state (None: reseed)."""
        path = latest_checkpoint(self.checkpoint_dir)
        if path is None:
            logger.info("no checkpoint under %s; starting fresh", self.checkpoint_dir)
            return None
        state = load_checkpoint(path, self.model, self.ema)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        # Checkpoints written before these fields existed count as one part of no time.
        self._earlier_s = float(state.get("train_seconds", 0.0))
        self._parts = int(state.get("parts", 1)) + 1
        logger.info("resumed from %s at update %d", path, self.step)
        if len(state["rng"]) != self.world_size:
            logger.warning(
                "checkpoint was written by %d processes, not %d: restarting the "
                "epoch order and reseeding",
                len(state["rng"]),
                self.world_size,
            )
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            seed_everything(self.config.seed + self.rank + self.step)
            return capture_rng_state()
        return state["rng"][self.rank]

    def _val_batches(
        self, val_dataset: Dataset | None, val_lengths: Sequence[int] | None
    ) -> list[list[int]]:
        """This rank's validation batches: a fixed order, split across ranks without padding."""
        if val_dataset is None:
            return []
        cfg = self.config
        if val_lengths is not None:
            batches = DynamicBatchSampler(
                val_lengths, cfg.frames_per_batch, cfg.max_samples_per_batch, shuffle=False
            ).epoch_batches(0)
        else:
            n, size = len(val_dataset), cfg.max_samples_per_batch
            batches = [list(range(i, min(i + size, n))) for i in range(0, n, size)]
        return batches[self.rank :: self.world_size]

    def _batches(self, dataset: Dataset, collate_fn: CollateFn) -> Iterator[dict[str, Any]]:
        """Batches forever, epoch after epoch, tracking the position a checkpoint stores."""
        from torch.utils.data import DataLoader

        while True:
            self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
            loader = DataLoader(
                dataset,
                batch_sampler=self.sampler,
                collate_fn=collate_fn,
                num_workers=self.config.num_workers,
                pin_memory=self.device.type == "cuda",
                # Its own generator: otherwise making the iterator draws from the global RNG.
                generator=torch.Generator().manual_seed(self.config.seed + self.epoch),
            )
            for batch in loader:
                self.batch_in_epoch += 1
                yield batch
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    def _loop(
        self,
        train_dataset: Dataset,
        collate_fn: CollateFn,
        val_dataset: Dataset | None,
        val_batches: list[list[int]],
        end: int,
    ) -> TrainResult:
        """Updates until ``end`` (or out of time), with the cadenced side steps."""
        from tqdm.auto import tqdm

        cfg = self.config
        start = time.monotonic()
        batches = self._batches(train_dataset, collate_fn)
        window, last = _Window(), {"train": None, "val": None}
        saved_at = self.step if self.step > 0 else None
        self._origin = (start, self.step, end)  # for progress lines without a terminal
        bar = tqdm(
            total=end,
            initial=self.step,
            desc="train",
            dynamic_ncols=True,
            disable=not (self.is_main and sys.stderr.isatty()),
        )
        self.loss_module.train()
        while self.step < end:
            self._train_step(batches, window)
            self.step += 1
            bar.update(1)
            if _due(cfg.log_every, self.step):
                last["train"] = self._log_window(window, bar)
                window = _Window()
            if val_dataset is not None and _due(cfg.eval_every, self.step):
                last["val"] = self._evaluate(val_dataset, collate_fn, val_batches)
            if _due(cfg.sample_every, self.step):
                self._sample()
            if _due(cfg.save_every, self.step):
                self._save()
                saved_at = self.step
            if cfg.max_minutes is not None and self.step < end and self._out_of_time(start):
                # A safety limit, not a budget: keep a checkpoint for --resume, then fail
                # rather than hand on a model with fewer updates than configured.
                bar.close()
                if saved_at != self.step:
                    self._save()
                raise StageTimeLimitError(self.stage, cfg.max_minutes, self.step, end)
        bar.close()
        if window.updates:
            last["train"] = self._log_window(window, bar)
        if saved_at != self.step:
            self._save()
        checkpoint = self.checkpoint_dir / step_dir_name(self.step) if self.step else None
        return TrainResult(
            self.step,
            last["train"],
            last["val"],
            checkpoint,
            time.monotonic() - start,
            earlier_s=self._earlier_s,
            parts=self._parts,
        )

    def _train_step(self, batches: Iterator[dict[str, Any]], window: _Window) -> None:
        """One optimizer update over ``grad_accumulation_steps`` batches."""
        cfg = self.config
        tic = time.perf_counter()
        accum = cfg.grad_accumulation_steps
        for micro in range(accum):
            batch = next(batches)
            window.frames += count_frames(batch)  # on the CPU copy: no device sync
            batch = move_to_device(batch, self.device)
            sync = micro == accum - 1 or self.world_size == 1
            no_sync = contextlib.nullcontext() if sync else self.loss_module.no_sync()
            with no_sync:
                with self._autocast:
                    loss, terms = self.loss_module(batch)
                (loss / accum).backward()
            window.loss += float(loss.detach())
            for k, v in terms.items():
                window.terms[k] = window.terms.get(k, 0.0) + float(v)
            window.batches += 1
        self._term_names = self._term_names or sorted(terms)
        window.lr = self.optimizer.param_groups[0]["lr"]
        params = self.optimizer.param_groups[0]["params"]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
        if math.isfinite(grad_norm):
            self.optimizer.step()
            window.grad_norm += grad_norm
        else:  # skip the update, keep the schedule (a rare fp spike should not end a run)
            logger.warning("non-finite gradient norm at update %d: update skipped", self.step)
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.ema.update(self.model)
        window.updates += 1
        window.seconds += time.perf_counter() - tic

    def _all_reduce(self, values: list[float]) -> list[float]:
        """Sum over ranks (identity on one process)."""
        return all_reduce_sum(values, self.world_size, self.device)

    def _log_window(self, window: _Window, bar: Any) -> float:
        """Average the window over batches and ranks, log it; return the mean loss."""
        keys = sorted(window.terms)
        sums = self._all_reduce(
            [window.loss, window.batches, window.frames, window.grad_norm]
            + [window.terms[k] for k in keys]
        )
        loss_sum, n, frames, grad_sum, *term_sums = sums
        metrics = {
            "train/loss": loss_sum / n,
            "train/lr": window.lr,
            "train/grad_norm": grad_sum / self.world_size / window.updates,
            "train/frames_per_s": frames / max(window.seconds, 1e-9),
            "train/epoch": float(self.epoch),
            **{f"train/{k}": s / n for k, s in zip(keys, term_sums, strict=True)},
        }
        if self.is_main:
            bar.set_postfix(loss=f"{metrics['train/loss']:.4f}")
            if bar.disable:  # no terminal (a pipeline step, a log file): progress as lines
                began, first, total = self._origin
                elapsed, done = time.monotonic() - began, max(self.step - first, 1)
                left = elapsed / done * (total - self.step)
                logger.info(
                    "%s update %d/%d: loss %.4f (%.1f s/update, ~%.0f s left)",
                    self.stage,
                    self.step,
                    total,
                    metrics["train/loss"],
                    elapsed / done,
                    left,
                )
            if self.tracker is not None:
                self.tracker.log_metrics(metrics, step=self.step)
        return metrics["train/loss"]

    @torch.no_grad()
    def _evaluate(
        self, dataset: Dataset, collate_fn: CollateFn, batches: list[list[int]]
    ) -> float | None:
        """Validation loss of the EMA weights, weighted by items, on fixed seeds."""
        from torch.utils.data import DataLoader

        loader = DataLoader(
            dataset,
            batch_sampler=batches,
            collate_fn=collate_fn,
            num_workers=self.config.num_workers,
        )
        names = self._term_names
        total, items, sums = 0.0, 0, dict.fromkeys(names, 0.0)
        self.model.eval()
        with self.ema.applied_to(self.model), isolated_rng(self.config.seed + self.rank):
            for batch in loader:
                size = batch_size(batch)
                with self._autocast:
                    loss, terms = self.model.training_loss(move_to_device(batch, self.device))
                total += float(loss) * size
                items += size
                for k in names:
                    sums[k] += float(terms[k]) * size
        self.model.train()
        total, items, *term_sums = self._all_reduce([total, items, *sums.values()])
        if items == 0:
            return None
        metrics = {"val/loss": total / items}
        metrics |= {f"val/{k}": s / items for k, s in zip(names, term_sums, strict=True)}
        if self.is_main:
            logger.info("update %d: val loss %.4f", self.step, metrics["val/loss"])
            if self.tracker is not None:
                self.tracker.log_metrics(metrics, step=self.step)
        return metrics["val/loss"]

    def _sample(self) -> None:
        """Rank 0: ``sample_fn`` on the EMA weights into ``samples/step_*``; log the files."""
        if self.sample_fn is None or not self.is_main:
            return
        folder = self.out_dir / "samples" / step_dir_name(self.step)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.eval()
        with torch.no_grad(), self.ema.applied_to(self.model), isolated_rng(self.config.seed):
            files = self.sample_fn(self.model, self.step, folder)
        self.model.train()
        if self.tracker is not None:
            for path in files:
                self.tracker.log_artifact(path, artifact_path=f"samples/{folder.name}")

    def _save(self) -> None:
        """Every rank hands rank 0 its RNG state; rank 0 writes the checkpoint."""
        states = gather_objects(capture_rng_state(), self.world_size)
        if self.is_main:
            state = {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "rng": states,
                "world_size": self.world_size,
                "config": self.config.model_dump(mode="json"),
                "train_seconds": self._earlier_s + time.monotonic() - self._origin[0],
                "parts": self._parts,
            }
            path = save_checkpoint(
                self.checkpoint_dir, self.step, self.model, self.ema, state, self.config.keep_last
            )
            logger.info("saved %s", path)
        barrier(self.world_size)

    def _out_of_time(self, start: float) -> bool:
        """Rank 0's clock decides, so every rank stops after the same update."""
        assert self.config.max_minutes is not None
        late = time.monotonic() - start > self.config.max_minutes * 60
        return rank0_decides(late, self.world_size, self.device)


def _due(every: int, step: int) -> bool:
    return every > 0 and step % every == 0
