"""What a run ran on: the tags that let two runs' figures be compared honestly.

DESIGN.md, "How we measure": machines of the same kind differ in CPU, and a speed or
quality figure names the machine it came from. Every MLflow run gets these tags: the
CPU model, core count and the instruction sets that change torch's kernels (AVX2,
AVX-512, AMX), torch's thread count, the malloc settings that made training 10x
faster here, the versions of the packages that shape the weights, and every seed
in the config.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from functools import cache
from importlib import metadata
from typing import Any

PACKAGES = ("torch", "transformers", "trl", "numpy", "mlflow", "kfp", "dubops")
MALLOC_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
ISA_FLAGS = {"avx2": "avx2", "avx512f": "avx512", "amx_tile": "amx"}


@cache
def cpu_description() -> dict[str, str]:
    """CPU model, usable cores and instruction sets, from ``/proc/cpuinfo`` where present."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    isa = [name for flag, name in ISA_FLAGS.items() if flag in flags]
    return {"cpu_model": model, "cpu_cores": str(cores), "cpu_isa": ",".join(isa) or "none"}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def config_seeds(config: Any) -> dict[str, int]:
    """Every ``seed`` field of a pydantic config, by its dotted path."""
    found: dict[str, int] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                dotted = f"{path}.{key}" if path else str(key)
                if key == "seed" and isinstance(value, int):
                    found[dotted] = value
                else:
                    walk(value, dotted)

    walk(config.model_dump(mode="json"), "")
    return found


def environment_tags(config: Any | None = None) -> dict[str, str]:
    """``dubops.env.*`` tags: machine, threads, malloc, package versions and seeds."""
    import sys

    tags = {f"dubops.env.{k}": v for k, v in cpu_description().items()}
    tags["dubops.env.python"] = platform.python_version()
    if "torch" in sys.modules:  # never import torch just to tag a run
        tags["dubops.env.torch_threads"] = str(sys.modules["torch"].get_num_threads())
    tags["dubops.env.malloc"] = " ".join(f"{v}={os.environ.get(v, '-')}" for v in MALLOC_VARS)
    for package in PACKAGES:
        tags[f"dubops.env.version.{package}"] = _version(package)
    if config is not None:
        seeds = config_seeds(config)
        tags["dubops.env.seeds"] = ",".join(f"{k}={v}" for k, v in sorted(seeds.items()))[:5000]
    return tags


@contextlib.contextmanager
def one_thread_by_default() -> Iterator[None]:
    """Run a pipeline step with one torch thread and single-threaded BLAS unless it asks.

    A float sum split over two threads is added in another order than over one, so a
    step whose thread count follows the machine's cores (``taskset -c 0`` vs two idle
    cores) gives other last bits, other retrieval ties, another model. Stages that want
    more threads set them from their config inside the block (``torch_threads``).
    """
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)
