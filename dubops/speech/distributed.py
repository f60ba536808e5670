"""The few collective operations the trainer needs, each an identity on one process.

``torchrun`` sets ``WORLD_SIZE``/``RANK``; :func:`join_process_group` joins that group
(gloo on CPU, NCCL on CUDA). Everything else here is written so a single-process
run never touches ``torch.distributed``.
"""

from __future__ import annotations

import os
from typing import Any

import torch


def join_process_group(device: torch.device) -> tuple[int, int, bool]:
    """``(rank, world_size, created)``; ``created`` when this call initialised the group."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, False
    import torch.distributed as dist

    created = not dist.is_initialized()
    if created:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), created


def leave_process_group() -> None:
    import torch.distributed as dist

    dist.destroy_process_group()


def all_reduce_sum(values: list[float], world_size: int, device: torch.device) -> list[float]:
    """Sum over ranks."""
    if world_size == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def gather_objects(obj: Any, world_size: int) -> list[Any]:
    """Every rank's ``obj`` on every rank (rank order)."""
    if world_size == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(world_size: int) -> None:
    if world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def rank0_decides(flag: bool, world_size: int, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank, so all ranks take the same branch."""
    if world_size == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([float(flag)], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())
