"""What a training choice costs on this machine: DDP processes against cores, a precision's speed."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch
from torch import nn

from workbench.engine.devices import DeviceInfo
from workbench.engine.precision import make_precision

SLOWER_THRESHOLD = 1.15  # a precision under this many times float32's step time is "as fast"
MEASURE_SECONDS = 0.4  # per precision: a few dozen steps of a small MLP, off the GUI thread


def cpu_cores() -> int:
    """The cores this process may run on (its affinity where the OS tells, else all)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ProcessCap:
    processes: int  # what may run
    message: str | None  # why fewer than asked, or None


def ddp_process_cap(device: DeviceInfo, requested: int, cores: int | None = None) -> ProcessCap:
    """DDP on the CPU runs one process per core at most: more only wait on each other (16
    processes on 2 cores trained no batch in 25 s). Other devices are left as asked."""
    if device.kind != "cpu":
        return ProcessCap(requested, None)
    cores = cpu_cores() if cores is None else cores
    if requested <= cores:
        return ProcessCap(requested, None)
    word = "core" if cores == 1 else "cores"
    return ProcessCap(
        cores,
        f"DDP processes capped at {cores}: this machine has {cores} CPU {word}, and "
        f"{requested} processes would only wait on each other",
    )


def step_seconds(device: DeviceInfo, precision: str, seconds: float = MEASURE_SECONDS) -> float:
    """Median seconds of one training step of a small MLP under PRECISION on DEVICE."""
    torch_device = torch.device(device.name)
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10)).to(torch_device)  # fmt: skip
    inputs = torch.randn(128, 256, generator=generator).to(torch_device)
    labels = torch.randint(0, 10, (128,), generator=generator).to(torch_device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    plugin = make_precision(precision, device)
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        start = time.perf_counter()
        optimizer.zero_grad()
        with plugin.forward_context():
            loss = nn.functional.cross_entropy(model(inputs), labels)
        plugin.backward(loss)
        plugin.optimizer_step(optimizer)
        if torch_device.type == "cuda":
            torch.cuda.synchronize(torch_device)
        times.append(time.perf_counter() - start)
    times = sorted(times[2:])  # the first steps warm up kernels and caches
    return times[len(times) // 2]


def precision_slowdowns(device: DeviceInfo) -> dict[str, float]:
    """For each precision DEVICE offers besides float32: its step time over float32's."""
    baseline = step_seconds(device, "32-true")
    return {
        name: step_seconds(device, name) / baseline
        for name in device.precisions
        if name != "32-true"
    }


def slowdown_note(slowdown: float) -> str | None:
    """`2.3× slower than float32 here` when the precision is measurably slower, else None."""
    if slowdown < SLOWER_THRESHOLD:
        return None
    return f"{slowdown:.1f}× slower than float32 on this device"
