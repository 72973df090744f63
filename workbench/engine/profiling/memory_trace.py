"""Peak memory of a training step, and a Chrome trace of it (torch.profiler) for a closer look."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.engine.atomic import atomic_path
from workbench.engine.profiling.layer_hooks import TraceLabels

# Kineto, torch.profiler's engine, logs every start and stop on stderr unless told not to.
KINETO_QUIET = "6"


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind `tensors` (views of one storage count once)."""
    storages: dict[int, int] = {}
    for tensor in tensors:
        with contextlib.suppress(RuntimeError, NotImplementedError):
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def held_tensors(
    model: nn.Module, optimizer: torch.optim.Optimizer, batch: Iterable[torch.Tensor]
) -> list[torch.Tensor]:
    state = [
        value
        for per_parameter in optimizer.state.values()
        for value in per_parameter.values()
        if isinstance(value, torch.Tensor)
    ]
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return [*model.parameters(), *model.buffers(), *grads, *state, *batch]


def _quiet_kineto() -> None:
    os.environ.setdefault("KINETO_LOG_LEVEL", KINETO_QUIET)


@contextlib.contextmanager
def profiled(device: torch.device) -> Iterator[torch.profiler.profile]:
    """torch.profiler over the block, recording memory, shapes and the device's kernels."""
    _quiet_kineto()
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(
        activities=activities, record_shapes=True, profile_memory=True
    ) as profiler:
        yield profiler


def allocation_peak(profiler: torch.profiler.profile, device: torch.device) -> int | None:
    """The highest running total of the allocations the profiler saw on `device`."""
    kineto: Any = getattr(profiler.profiler, "kineto_results", None)
    if kineto is None:
        return None
    kinds = torch.profiler.DeviceType
    wanted = kinds.CUDA if device.type == "cuda" else kinds.CPU
    events = [e for e in kineto.events() if e.name() == "[memory]" and e.device_type() == wanted]
    running = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        running += event.nbytes()
        peak = max(peak, running)
    return peak


def traced_steps(
    model: nn.Module,
    step: Callable[[], None],
    device: torch.device,
    steps: int,
    trace: Path | None,
) -> int | None:
    """Run `step` `steps` times under torch.profiler, each layer's forward labelled; write the
    Chrome trace to `trace` (atomically) if given; return the allocation peak above the start."""
    with profiled(device) as profiler, TraceLabels(model):
        for index in range(steps):
            with torch.profiler.record_function(f"training step {index + 1}"):
                step()
    if trace is not None:
        with atomic_path(trace) as temp:
            profiler.export_chrome_trace(str(temp))
    return allocation_peak(profiler, device)


def cuda_peak(step: Callable[[], object], device: torch.device) -> int:
    """torch.cuda's own peak counter over one step, less what was allocated before it."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before
