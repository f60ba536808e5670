"""``torch.compile`` with inductor's weight freezing, and the guard that keeps it correct.

Why freeze: with the weights as constants, inductor packs them for oneDNN and
fuses each linear layer with its bias and activation; on a CPU that makes the
sampler's step 1.6-2.0x faster than the eager pass, where plain compilation gains
1.0-1.1x (``benchmarks/dit_sampling.py``).

Why a guard: the compiled code keeps the weights it saw when it traced, and
dynamo reuses it for every later call on the same module objects, even through a
new ``torch.compile`` wrapper. Each module's in-place update counters are noted
the first time it is frozen; once they move (a training step, EMA,
``load_state_dict``), :func:`weights_unchanged` says so and the caller must run
eagerly.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable

import torch
from torch import nn

_FROZEN: weakref.WeakKeyDictionary[nn.Module, tuple[int, ...]] = weakref.WeakKeyDictionary()


def weight_versions(module: nn.Module) -> tuple[int, ...]:
    """In-place update counters of every parameter and buffer (they move on each write).

    Inference tensors (made under ``torch.inference_mode``) keep no counter and
    cannot be written outside it; they count as unchanged.
    """
    tensors = (*module.parameters(), *module.buffers())
    return tuple(-1 if t.is_inference() else t._version for t in tensors)


def modules_in(fn: Callable | None) -> list[nn.Module]:
    """The modules a callable reads: a bound method's owner and its closure's modules."""
    if fn is None:
        return []
    found = [getattr(fn, "__self__", None)]
    found += [cell.cell_contents for cell in getattr(fn, "__closure__", None) or ()]
    return [m for m in found if isinstance(m, nn.Module)]


def weights_unchanged(modules: Iterable[nn.Module]) -> bool:
    """True while every module still has the weights it was (or is about to be) frozen with."""
    same = True
    for module in modules:
        now = weight_versions(module)
        seen = _FROZEN.setdefault(module, now)
        same = same and seen == now
    return same


def frozen_compile(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``torch.compile(fn, dynamic=True)`` run with inductor's freezing on.

    The freezing switch is read by the tracer on each (re)compile, so it is set
    around every call; ``torch.compile(options={"freezing": True})`` does not
    reach the tracer and leaves the weights as inputs.
    """
    import torch._inductor.config as inductor_config

    compiled = torch.compile(fn, dynamic=True)

    def step(*args: object) -> torch.Tensor:
        with inductor_config.patch(freezing=True):
            return compiled(*args)

    return step
