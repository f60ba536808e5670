"""Frame-budget batches: F5-TTS's DynamicBatchSampler, deterministic and DDP-aware.

Items are sorted by length and packed greedily while the *padded* batch
(``count x longest``) stays within ``frames_per_batch`` and ``max_samples``;
F5-TTS counts the sum of lengths, but the padded size is what the GPU holds,
and with sorted lengths the two differ little. The batches are fixed once;
each epoch shuffles their order with ``(seed, epoch)``, so every process of a
DDP run and every resumed run sees the same order. Rank ``r`` of ``w`` takes
batches ``r, r + w, ...``; the epoch's list is padded by repeating its first
batches so every rank gets the same count (DistributedSampler does the same),
because a rank that runs out first would leave the others waiting in DDP.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def pack_by_frames(
    lengths: Sequence[int], frames_per_batch: int, max_samples: int
) -> list[list[int]]:
    """Indices sorted by length, cut into batches within the padded frame budget.

    Raises:
        ValueError: an item alone is longer than the budget (F5-TTS drops such
            items silently; we ask for a larger budget or a filtered manifest).
    """
    if frames_per_batch < 1 or max_samples < 1:
        raise ValueError("frames_per_batch and max_samples must be positive")
    too_long = [n for n in lengths if n > frames_per_batch]
    if too_long:
        raise ValueError(
            f"{len(too_long)} item(s) are longer than frames_per_batch={frames_per_batch} "
            f"(longest {max(too_long)} frames); raise frames_per_batch or filter the manifest"
        )
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    batches: list[list[int]] = []
    batch: list[int] = []
    for i in order.tolist():
        # Ascending order: the new item is the batch's longest.
        if batch and (
            (len(batch) + 1) * lengths[i] > frames_per_batch or len(batch) >= max_samples
        ):
            batches.append(batch)
            batch = []
        batch.append(i)
    if batch:
        batches.append(batch)
    return batches


class DynamicBatchSampler:
    """Batch sampler for ``DataLoader(batch_sampler=...)`` over a frame budget.

    Call :meth:`set_epoch` before each epoch; ``start`` skips the batches this
    rank already consumed in it (resuming mid-epoch).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        frames_per_batch: int,
        max_samples: int,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        if len(lengths) == 0:
            raise ValueError("no items to batch")
        self.batches = pack_by_frames(lengths, frames_per_batch, max_samples)
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = epoch
        self.start = start

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of ``epoch``, from the first."""
        order = list(range(len(self.batches)))
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(order)).tolist()
        per_rank = -(-len(order) // self.world_size)
        order = (order * self.world_size)[: per_rank * self.world_size]  # pad by wrapping
        return [self.batches[j] for j in order[self.rank :: self.world_size]]

    @property
    def batches_per_epoch(self) -> int:
        return -(-len(self.batches) // self.world_size)

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.epoch_batches(self.epoch)[self.start :]

    def __len__(self) -> int:
        return max(self.batches_per_epoch - self.start, 0)
