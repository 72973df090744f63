"""What each layer costs apart from time: FLOPs (torch.utils.flop_counter) and parameter bytes."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

GLOBAL = "Global"  # FlopCounterMode's key for the whole run


def _by_module(counter: FlopCounterMode, root: nn.Module) -> dict[str, int]:
    """FlopCounterMode names modules `Root.a.b` after the root's class; we name them `a.b`."""
    root_name = type(root).__name__
    totals: dict[str, int] = {}
    for key, per_op in counter.get_flop_counts().items():
        flops = int(sum(per_op.values()))
        if key == GLOBAL:
            totals[GLOBAL] = flops
        elif key == root_name:
            totals[""] = flops
        elif key.startswith(root_name + "."):
            totals[key[len(root_name) + 1 :]] = flops
    return totals


def layer_flops(
    model: nn.Module, forward: Callable[[], torch.Tensor]
) -> tuple[dict[str, int], dict[str, int]]:
    """Forward and backward FLOPs per module name for one batch, with GLOBAL holding the totals.

    `forward()` runs the model and returns the loss. FlopCounterMode counts matrix products,
    convolutions and attention (2 FLOPs per multiply-accumulate); element-wise work counts 0.
    """
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        forward()
    forward_flops = _by_module(counter, model)
    with FlopCounterMode(display=False) as counter:
        forward().backward()  # type: ignore[no-untyped-call]
    model.zero_grad(set_to_none=True)
    both = _by_module(counter, model)
    backward_flops = {name: flops - forward_flops.get(name, 0) for name, flops in both.items()}
    return forward_flops, backward_flops


def parameter_bytes(module: nn.Module) -> int:
    """Bytes of a module's parameters and buffers (running statistics and the like)."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)
